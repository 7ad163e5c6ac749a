//! What the dialog layer tells the node: a call started (its 2xx went
//! upstream) or ended, with one [`CallRecord`] that is both the dialog
//! hooks' argument and the CDR.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The caller sent BYE.
    CallerBye,
    /// The callee sent BYE.
    CalleeBye,
    /// Cancelled before it was answered (487).
    Cancelled,
    /// A final non-2xx response (busy, declined, unreachable...): the
    /// call was never answered.
    Failed,
    /// Refused by a concurrent-call limit before it was forwarded.
    Limited,
    /// Ran longer than `[dialogs] max_duration_secs`.
    MaxDuration,
    /// RFC 4028: no session refresh within `Session-Expires` (only with
    /// `[dialogs] enforce_session_timers`).
    SessionExpired,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerBye => "caller-bye",
            EndReason::CalleeBye => "callee-bye",
            EndReason::Cancelled => "cancelled",
            EndReason::Failed => "failed",
            EndReason::Limited => "limited",
            EndReason::MaxDuration => "max-duration",
            EndReason::SessionExpired => "session-expired",
        }
    }
}

/// One call, as a CDR (one JSON line) and as the dialog hooks see it.
/// Times are Unix milliseconds; durations come from the monotonic clock,
/// so a wall-clock step during a call does not bend them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Unique in the cluster: the owning node's id and a serial.
    pub id: String,
    pub tenant: String,
    pub call_id: String,
    /// The From AOR (`user@domain`) of the INVITE.
    pub caller: String,
    /// The To AOR (`user@domain`): who was dialled.
    pub callee: String,
    /// The INVITE arrived.
    pub start_ms: u64,
    /// The 2xx went upstream (none: never answered).
    pub answer_ms: Option<u64>,
    /// The call ended (none in an `on-dialog-start` record).
    pub end_ms: Option<u64>,
    /// Answer to end, in milliseconds (0 when unanswered or not ended).
    pub duration_ms: u64,
    /// The INVITE's final status upstream (0: none yet).
    pub status: u16,
    pub end_reason: Option<EndReason>,
    /// RFC 4028 `Session-Expires` of the 2xx, in seconds, when present.
    pub session_expires: Option<u32>,
}

/// Sent to the node's dialog task: write the CDR, call the hooks.
pub struct CallEvent {
    pub kind: CallEventKind,
    pub record: CallRecord,
    /// The policy version that routed the INVITE and its ctx at the 2xx,
    /// for `on-dialog-start` / `on-dialog-end` (none: nothing to call).
    pub policy: Option<(Arc<dyn Policy>, Vec<u8>)>,
}

impl std::fmt::Debug for CallEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallEvent")
            .field("kind", &self.kind)
            .field("record", &self.record)
            .field("policy", &self.policy.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEventKind {
    /// Answered: `on-dialog-start`.
    Started,
    /// Over: the CDR, and `on-dialog-end` when it had started.
    Ended,
}
