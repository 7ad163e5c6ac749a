//! The calls through this node, as far as a graceful stop needs them: a
//! dialog is counted from the 2xx to an INVITE we record-routed until a BYE
//! of it arrives (either side's) or its maximum lifetime passes. A draining
//! node waits for the count to reach zero, so a call set up before SIGTERM
//! can still hang up through it.
//!
//! This is bookkeeping, not a dialog state machine: no CSeq, no session
//! timers. (The dialog layer with durations, limits and CDRs builds on it.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchyard_codec::SipMessage;

/// Call-ID and the two tags, the lower tag first so that a BYE from either
/// side finds the entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    call_id: String,
    tags: (String, String),
}

impl DialogKey {
    /// The dialog a message belongs to (both tags needed).
    pub fn of(msg: &SipMessage) -> Option<DialogKey> {
        let call_id = msg.call_id().ok()?.to_owned();
        let from = msg.from().ok()?.tag()?.to_owned();
        let to = msg.to().ok()?.tag()?.to_owned();
        let tags = if from <= to { (from, to) } else { (to, from) };
        Some(DialogKey { call_id, tags })
    }
}

/// Dialogs through this node, each with the instant it is forgotten anyway.
#[derive(Debug, Default)]
pub struct Dialogs {
    live: HashMap<DialogKey, Instant>,
}

impl Dialogs {
    /// A 2xx to a record-routed INVITE went upstream.
    pub fn confirmed(&mut self, key: DialogKey, now: Instant, max: Duration) {
        if self.live.len() >= 4096 && self.live.len().is_power_of_two() {
            self.live.retain(|_, until| *until > now);
        }
        self.live.insert(key, now + max);
    }

    /// A BYE of the dialog arrived.
    pub fn ended(&mut self, key: &DialogKey) {
        self.live.remove(key);
    }

    /// Dialogs not ended and not past their lifetime at `now`.
    pub fn count(&mut self, now: Instant) -> usize {
        self.live.retain(|_, until| *until > now);
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(first: &str, from_tag: &str, to_tag: &str) -> SipMessage {
        let text = format!(
            "{first}\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKd\r\nFrom: <sip:a@x.test>;tag={from_tag}\r\n\
             To: <sip:b@x.test>;tag={to_tag}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::parse(Bytes::from(text)).unwrap()
    }

    #[test]
    fn a_bye_from_either_side_ends_it_and_the_lifetime_bounds_it() {
        let t0 = Instant::now();
        let mut dialogs = Dialogs::default();
        let ok = DialogKey::of(&msg("SIP/2.0 200 OK", "caller", "callee")).unwrap();
        dialogs.confirmed(ok.clone(), t0, Duration::from_secs(60));
        assert_eq!(dialogs.count(t0), 1);
        // The callee hangs up: its BYE has the tags the other way round.
        let bye = DialogKey::of(&msg("BYE sip:a@127.0.0.2 SIP/2.0", "callee", "caller")).unwrap();
        dialogs.ended(&bye);
        assert_eq!(dialogs.count(t0), 0);
        dialogs.confirmed(ok, t0, Duration::from_secs(60));
        assert_eq!(dialogs.count(t0 + Duration::from_secs(61)), 0);
        let no_to_tag = "INVITE sip:b@x.test SIP/2.0\r\nFrom: <sip:a@x.test>;tag=1\r\nTo: <sip:b@x.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert!(DialogKey::of(&SipMessage::parse(Bytes::from(no_to_tag)).unwrap()).is_none());
    }
}
