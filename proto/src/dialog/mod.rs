//! The dialog layer: the calls through this node, from INVITE to BYE, as a
//! sans-IO table driven by the endpoint (and by a periodic [`Calls::expire`]).
//!
//! ```text
//!  INVITE forwarded ──▶ begin ──▶ Early ──2xx──▶ Answered ──ACK──▶ Confirmed ──BYE──▶ ended
//!      │ over a limit                │ non-2xx final                  │ max duration /
//!      └──▶ refused (486/503)        └──▶ ended (failed, cancelled)    └ session expiry ─▶ ended
//! ```
//!
//! A call is tracked by the node that routed its INVITE for a tenant (the
//! *owner*); the owner's Record-Route entry keeps every in-dialog request,
//! from either side and from any node, on its path. An edge node that
//! relays the INVITE to a phone's flow keeps a *transit* entry: it counts
//! for nothing and writes no CDR, but a draining edge waits for it, since
//! the call's BYE must still pass through it. Each start and end comes
//! out as a [`CallEvent`]: the node writes the CDR and calls the policy's
//! dialog hooks outside any lock.
//!
//! Counts: the table keeps this node's calls per tenant and per user
//! exactly, and adds the other nodes' shares, which the node reads from
//! the store ([`Calls::set_remote`]) and publishes its own from
//! ([`Calls::shares`]). A node that dies stops publishing and its shares
//! expire, so its calls stop counting (no leaked slots).
//!
//! Memory: one hash-table entry and one string allocation per call, plus
//! a count per user in a call (about 420–480 bytes;
//! `cargo bench -p switchyard-proto --bench dialog_memory`). The counts
//! and the shares are in `counts.rs`.

mod counts;
mod limits;
mod record;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use switchyard_codec::{Method, SipMessage};

use self::counts::TenantCounts;
pub use self::limits::{CallLimits, LimitHit, LimitsTable};
pub use self::record::{CallEvent, CallEventKind, CallRecord, EndReason};
use crate::endpoint::Now;
use crate::policy::Policy;

/// `Call::users` of a transit entry.
const TRANSIT: u8 = 0x80;

/// The name of a tenant's total in its shares.
pub const TENANT_SHARE: &str = "calls";
/// The prefix of a user's count in its tenant's shares.
pub const USER_SHARE_PREFIX: &str = "user:";

/// How long calls may last and whether session timers are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogSettings {
    /// A call still up after this is ended (reason `max-duration`).
    pub max_duration: Duration,
    /// End a call whose session was not refreshed within its RFC 4028
    /// `Session-Expires`. Off: Session-Expires is only recorded.
    pub enforce_session_timers: bool,
}

impl Default for DialogSettings {
    fn default() -> Self {
        DialogSettings {
            max_duration: Duration::from_secs(4 * 3600),
            enforce_session_timers: false,
        }
    }
}

/// Names a call in the table (a keyed hash of Call-ID and caller tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallKey(u64);

/// A new call, as the endpoint saw its INVITE.
pub struct CallStart<'a> {
    pub tenant: &'a str,
    pub call_id: &'a str,
    /// The INVITE's From tag.
    pub caller_tag: &'a str,
    /// The From AOR and whether it is one of our users (counted per user).
    pub caller: (&'a str, bool),
    /// The To AOR and whether it is one of our users.
    pub callee: (&'a str, bool),
    /// The policy that routes it, when it has dialog hooks.
    pub policy: Option<Arc<dyn Policy>>,
    /// Relayed for another node (see the module docs): no limits, counts,
    /// events.
    pub transit: bool,
}

/// A call refused by a limit: its answer and its CDR.
#[derive(Debug)]
pub struct Refused {
    pub hit: LimitHit,
    pub event: CallEvent,
}

struct Call {
    serial: u64,
    tenant: Arc<str>,
    /// `call_id \n caller_tag \n caller \n callee`: one allocation.
    text: Box<str>,
    started: Instant,
    start_ms: u64,
    answered: Option<Instant>,
    deadline: Instant,
    status: u16,
    confirmed: bool,
    /// Bit 0: the caller is counted as a user; bit 1: the callee; bit 7:
    /// a transit entry.
    users: u8,
    session_expires: Option<u32>,
    policy: Option<HookedPolicy>,
}

/// The policy version whose dialog hooks a call gets, and its ctx.
type HookedPolicy = (Arc<dyn Policy>, Box<[u8]>);

impl Call {
    fn parts(&self) -> [&str; 4] {
        let mut it = self.text.splitn(4, '\n');
        [(); 4].map(|()| it.next().unwrap_or(""))
    }

    fn is(&self, call_id: &str, caller_tag: &str) -> bool {
        let [id, tag, ..] = self.parts();
        id == call_id && tag == caller_tag
    }
}

/// The calls of this node. See the module documentation.
pub struct Calls {
    node_id: Arc<str>,
    settings: DialogSettings,
    limits: LimitsTable,
    calls: HashMap<u64, Call>,
    hasher: RandomState,
    local: HashMap<Arc<str>, TenantCounts>,
    /// Tenant → the other nodes' shares (from the store).
    remote: HashMap<String, HashMap<String, i64>>,
    next_serial: u64,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("live", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl Default for Calls {
    fn default() -> Self {
        Calls::new("node", DialogSettings::default(), LimitsTable::default())
    }
}

impl Calls {
    pub fn new(node_id: &str, settings: DialogSettings, limits: LimitsTable) -> Calls {
        Calls {
            node_id: node_id.into(),
            settings,
            limits,
            calls: HashMap::new(),
            hasher: RandomState::new(),
            local: HashMap::new(),
            remote: HashMap::new(),
            next_serial: 0,
        }
    }

    /// New limits and settings (a reload); calls in progress keep going.
    pub fn reconfigure(&mut self, settings: DialogSettings, limits: LimitsTable) {
        self.settings = settings;
        self.limits = limits;
    }

    fn key(&self, call_id: &str, caller_tag: &str) -> u64 {
        self.hasher.hash_one((call_id, caller_tag))
    }

    /// An INVITE is about to be forwarded: counts it, or refuses it when
    /// a limit of its tenant or of one of its users is reached. An INVITE
    /// of a call already tracked (a new transaction for the same Call-ID
    /// and From tag) is the same call.
    pub fn begin(&mut self, start: CallStart<'_>, now: Now) -> Result<CallKey, Box<Refused>> {
        let key = self.key(start.call_id, start.caller_tag);
        if let Some(call) = self.calls.get(&key)
            && call.is(start.call_id, start.caller_tag)
        {
            return Ok(CallKey(key));
        }
        let limits = *self.limits.of(start.tenant);
        let users = [start.caller, start.callee];
        let hit = if start.transit {
            None
        } else if !limits::room(limits.max_calls, || self.tenant_calls(start.tenant)) {
            Some(LimitHit::tenant(&limits))
        } else if users.iter().any(|&(aor, ours)| {
            ours && !limits::room(limits.max_calls_per_user, || {
                self.user_calls(start.tenant, aor)
            })
        }) {
            Some(LimitHit::user(&limits))
        } else {
            None
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut call = Call {
            serial,
            tenant: self.tenant_name(start.tenant),
            text: format!(
                "{}\n{}\n{}\n{}",
                start.call_id, start.caller_tag, start.caller.0, start.callee.0
            )
            .into_boxed_str(),
            started: now.instant,
            start_ms: unix_ms(now),
            answered: None,
            deadline: now.instant + self.settings.max_duration,
            status: 0,
            confirmed: false,
            users: if start.transit {
                TRANSIT
            } else {
                u8::from(start.caller.1) | (u8::from(start.callee.1) << 1)
            },
            session_expires: None,
            policy: None,
        };
        if let Some(hit) = hit {
            call.status = hit.status;
            let event = self.event(&call, CallEventKind::Ended, Some(EndReason::Limited), now);
            return Err(Box::new(Refused { hit, event }));
        }
        call.policy = start.policy.map(|p| (p, Box::default()));
        self.count(&call, 1);
        self.calls.insert(key, call);
        Ok(CallKey(key))
    }

    /// The INVITE's final response went upstream: a 2xx starts the dialog
    /// (with the policy's ctx of that moment), anything else ends the call.
    pub fn final_response(
        &mut self,
        key: CallKey,
        status: u16,
        session_expires: Option<u32>,
        ctx: &[u8],
        now: Now,
    ) -> Option<CallEvent> {
        let call = self.calls.get_mut(&key.0)?;
        if call.answered.is_some() {
            return None;
        }
        call.status = status;
        if !(200..300).contains(&status) {
            let reason = if status == 487 {
                EndReason::Cancelled
            } else {
                EndReason::Failed
            };
            return self.end(key.0, reason, now);
        }
        call.answered = Some(now.instant);
        call.session_expires = session_expires;
        if let Some((_, saved)) = &mut call.policy {
            *saved = ctx.into();
        }
        if let (true, Some(se)) = (self.settings.enforce_session_timers, session_expires) {
            call.deadline = call
                .deadline
                .min(now.instant + Duration::from_secs(se.into()));
        }
        let call = &self.calls[&key.0];
        (call.users != TRANSIT).then(|| self.event(call, CallEventKind::Started, None, now))
    }

    /// An in-dialog request passing through: ACK confirms, BYE ends, a
    /// re-INVITE or UPDATE refreshes the session timer (RFC 4028 §7.4;
    /// the refresh is taken when the request passes, not at its 2xx).
    pub fn in_dialog(&mut self, msg: &SipMessage, now: Now) -> Option<CallEvent> {
        if !may_change_a_call(msg) {
            return None;
        }
        let method = msg.method()?.clone();
        let call_id = msg.call_id().ok()?;
        let from_tag = msg.from().ok()?.tag()?;
        let to_tag = msg.to().ok()?.tag()?;
        let (key, by_caller) = [(from_tag, true), (to_tag, false)]
            .into_iter()
            .map(|(tag, side)| (self.key(call_id, tag), tag, side))
            .find(|(key, tag, _)| self.calls.get(key).is_some_and(|c| c.is(call_id, tag)))
            .map(|(key, _, side)| (key, side))?;
        let call = self.calls.get_mut(&key)?;
        call.answered?;
        match method {
            Method::Ack => call.confirmed = true,
            Method::Bye => {
                let reason = if by_caller {
                    EndReason::CallerBye
                } else {
                    EndReason::CalleeBye
                };
                return self.end(key, reason, now);
            }
            _ => {
                if let (true, Some(se)) =
                    (self.settings.enforce_session_timers, call.session_expires)
                {
                    let cap = call.started + self.settings.max_duration;
                    call.deadline = cap.min(now.instant + Duration::from_secs(se.into()));
                }
            }
        }
        None
    }

    /// Ends the calls past their deadline (call it about once a second).
    pub fn expire(&mut self, now: Now) -> Vec<CallEvent> {
        let due: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline <= now.instant)
            .map(|(k, _)| *k)
            .collect();
        due.into_iter()
            .filter_map(|key| {
                let call = &self.calls[&key];
                let by_session = call.deadline < call.started + self.settings.max_duration;
                let reason = if by_session {
                    EndReason::SessionExpired
                } else {
                    EndReason::MaxDuration
                };
                self.end(key, reason, now)
            })
            .collect()
    }

    fn end(&mut self, key: u64, reason: EndReason, now: Now) -> Option<CallEvent> {
        let call = self.calls.remove(&key)?;
        if call.users == TRANSIT {
            return None;
        }
        self.count(&call, -1);
        Some(self.event(&call, CallEventKind::Ended, Some(reason), now))
    }

    fn event(
        &self,
        call: &Call,
        kind: CallEventKind,
        reason: Option<EndReason>,
        now: Now,
    ) -> CallEvent {
        let [call_id, _, caller, callee] = call.parts();
        let ms_at =
            |at: Instant| call.start_ms + at.duration_since(call.started).as_millis() as u64;
        let end_ms = (kind == CallEventKind::Ended).then(|| ms_at(now.instant));
        let answer_ms = call.answered.map(ms_at);
        let record = CallRecord {
            id: format!("{}-{}", self.node_id, call.serial),
            tenant: call.tenant.to_string(),
            call_id: call_id.to_owned(),
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            start_ms: call.start_ms,
            answer_ms,
            end_ms,
            duration_ms: match (answer_ms, end_ms) {
                (Some(a), Some(e)) => e.saturating_sub(a),
                _ => 0,
            },
            status: call.status,
            end_reason: reason,
            session_expires: call.session_expires,
        };
        // Dialog hooks are for answered calls only.
        let policy = call
            .policy
            .as_ref()
            .filter(|_| call.answered.is_some())
            .map(|(p, ctx)| (p.clone(), ctx.to_vec()));
        CallEvent {
            kind,
            record,
            policy,
        }
    }

    fn tenant_name(&mut self, tenant: &str) -> Arc<str> {
        match self.local.get_key_value(tenant) {
            Some((name, _)) => name.clone(),
            None => tenant.into(),
        }
    }

    /// Calls tracked here (what a draining node waits for).
    pub fn live(&self) -> usize {
        self.calls.len()
    }
}

/// Whether `msg` is a request [`Calls::in_dialog`] may act on (ACK, BYE,
/// re-INVITE or UPDATE with a To tag): the cheap test a caller makes
/// before taking the table's lock for every request.
pub fn may_change_a_call(msg: &SipMessage) -> bool {
    let method = matches!(
        msg.method(),
        Some(Method::Ack | Method::Bye | Method::Invite | Method::Update)
    );
    method && msg.to_tag().is_ok_and(|t| t.is_some())
}

fn unix_ms(now: Now) -> u64 {
    now.wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 4028 §4: the delta-seconds of a message's `Session-Expires`
/// (compact form `x`).
pub fn session_expires(msg: &SipMessage) -> Option<u32> {
    let value = msg
        .header_by_name("Session-Expires")
        .or_else(|| msg.header_by_name("x"))?;
    value.split(';').next()?.trim().parse().ok()
}
