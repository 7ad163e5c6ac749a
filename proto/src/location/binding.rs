//! One registered contact and its identity.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::net::{Source, Transport};

/// One contact registered for an address-of-record (RFC 3261 §10.3), plus
/// everything later features need: outbound identity (RFC 5626), Path
/// (RFC 3327), where the REGISTER came from, and which node took it.
///
/// Times are absolute [`SystemTime`]s because nodes sharing a store share
/// them; `Instant`s are meaningless off the machine that took them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The Contact URI as the UA sent it (without `<>` or header parameters).
    pub contact: String,
    /// The contact URI normalised for RFC 3261 §19.1.4 comparison (see
    /// [`BindingKey::Contact`]); identity when there is no `+sip.instance`.
    pub contact_key: String,
    /// `+sip.instance` (RFC 5626 §4.1), unquoted, e.g. `<urn:uuid:...>`.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// The `q` parameter in thousandths (`q=0.5` → 500), kept integral so
    /// bindings are `Eq` and sort exactly.
    pub q: Option<u16>,
    /// The Path header values, topmost first (RFC 3327 §5.3), when the UA
    /// supports `path`. Requests to this contact are routed through them.
    pub path: Vec<String>,
    /// Call-ID and CSeq of the REGISTER that last wrote this binding: the
    /// ordering state of RFC 3261 §10.3 steps 6–7.
    pub call_id: String,
    pub cseq: u32,
    /// Absolute expiry.
    pub expires_at: SystemTime,
    /// When the binding was first created (kept across refreshes).
    pub registered_at: SystemTime,
    /// Transport and addresses the REGISTER arrived on: the flow to reuse for
    /// a UA behind NAT (RFC 5626 §5.3).
    #[serde(with = "SourceDef")]
    pub source: Source,
    /// The cluster node that took the registration (owns the flow).
    pub node: Option<String>,
    /// The UA's User-Agent header, for operators.
    pub user_agent: Option<String>,
}

impl Binding {
    /// The identity this binding is matched by (RFC 5626 §6 / RFC 3261 §10.3
    /// step 7). Allocates; prefer [`Binding::has_key`] for comparisons.
    pub fn key(&self) -> BindingKey {
        match &self.instance {
            Some(instance) => BindingKey::instance(instance, self.reg_id),
            None => BindingKey::Contact(self.contact_key.clone()),
        }
    }

    /// Whether this binding has the identity `key`, without allocating.
    pub fn has_key(&self, key: &BindingKey) -> bool {
        match (key, &self.instance) {
            (BindingKey::Instance { instance, reg_id }, Some(own)) => {
                *reg_id == self.reg_id && instance.eq_ignore_ascii_case(own)
            }
            (BindingKey::Contact(contact), None) => *contact == self.contact_key,
            _ => false,
        }
    }

    /// Whether the binding has expired at `now` (expiry is inclusive: a
    /// binding registered with `Expires: 60` is gone at exactly +60 s).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }

    /// Whole seconds left before expiry at `now`, as the 200 OK reports them
    /// (RFC 3261 §10.3 step 8), rounded up so a live binding never shows 0.
    pub fn remaining_secs(&self, now: SystemTime) -> u32 {
        let left = self.expires_at.duration_since(now).unwrap_or_default();
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// q as a preference for forking: RFC 3261 leaves an absent q to the
    /// implementation; like most proxies we treat it as 1.0.
    pub fn q_or_default(&self) -> u16 {
        self.q.unwrap_or(1000)
    }

    /// Time left before expiry at `now` (zero once expired): a row TTL for
    /// backends that expire data themselves.
    pub fn ttl(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }
}

/// The identity of a binding within an AOR.
///
/// RFC 5626 §6: with a `+sip.instance` the binding is identified by the
/// instance and `reg-id` (so a UA re-registering from a new address replaces
/// its old flow instead of adding one); otherwise by the contact URI compared
/// per RFC 3261 §19.1.4, for which the registrar computes a normalised form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BindingKey {
    /// Instance URNs compare case-insensitively (RFC 4122 §3 for `urn:uuid`),
    /// so the instance is stored lowercased here.
    Instance {
        instance: String,
        reg_id: Option<u32>,
    },
    /// The normalised contact URI.
    Contact(String),
}

impl BindingKey {
    /// An instance key, normalising the instance's case.
    pub fn instance(instance: &str, reg_id: Option<u32>) -> BindingKey {
        BindingKey::Instance {
            instance: instance.to_ascii_lowercase(),
            reg_id,
        }
    }
}

impl fmt::Display for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindingKey::Instance {
                instance,
                reg_id: Some(reg_id),
            } => write!(f, "{instance};reg-id={reg_id}"),
            BindingKey::Instance {
                instance,
                reg_id: None,
            } => f.write_str(instance),
            BindingKey::Contact(contact) => f.write_str(contact),
        }
    }
}

/// Parses a `q` value (RFC 3261 §20.10 qvalue: `0[.ddd]` or `1[.000]`) into
/// thousandths. `None` when the value is not a valid qvalue.
pub fn q_from_str(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in frac.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Formats thousandths as a qvalue: 500 → `0.5`, 1000 → `1`.
pub fn q_to_string(q: u16) -> String {
    if q >= 1000 {
        return "1".to_owned();
    }
    let text = format!("0.{q:03}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Serde mirror of [`Source`] (which lives in the serde-free `net` module).
#[derive(Serialize, Deserialize)]
#[serde(remote = "Source")]
struct SourceDef {
    #[serde(with = "TransportDef")]
    transport: Transport,
    remote: SocketAddr,
    local: SocketAddr,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Transport")]
enum TransportDef {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues_parse_to_thousandths() {
        assert_eq!(q_from_str("0"), Some(0));
        assert_eq!(q_from_str("0.5"), Some(500));
        assert_eq!(q_from_str("0.05"), Some(50));
        assert_eq!(q_from_str("0.125"), Some(125));
        assert_eq!(q_from_str("1"), Some(1000));
        assert_eq!(q_from_str("1.000"), Some(1000));
        for bad in ["1.5", "2", "0.1234", "", "x", "0.5x", "-0"] {
            assert_eq!(q_from_str(bad), None, "{bad}");
        }
    }

    #[test]
    fn qvalues_format_without_trailing_zeros() {
        assert_eq!(q_to_string(1000), "1");
        assert_eq!(q_to_string(500), "0.5");
        assert_eq!(q_to_string(125), "0.125");
        assert_eq!(q_to_string(0), "0");
    }

    #[test]
    fn remaining_seconds_round_up_and_stop_at_zero() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut binding = crate::location::samples::sample_binding("sip:a@127.0.0.1", now);
        binding.expires_at = now + Duration::from_millis(59_500);
        assert_eq!(binding.remaining_secs(now), 60);
        assert!(!binding.is_expired(now));
        binding.expires_at = now;
        assert_eq!(binding.remaining_secs(now), 0);
        assert!(binding.is_expired(now));
    }

    #[test]
    fn instance_identity_ignores_case_and_contact() {
        let now = SystemTime::UNIX_EPOCH;
        let mut binding = crate::location::samples::sample_binding("sip:a@127.0.0.1", now);
        binding.instance = Some("<urn:uuid:ABC>".into());
        binding.reg_id = Some(1);
        assert!(binding.has_key(&BindingKey::instance("<urn:uuid:abc>", Some(1))));
        assert!(!binding.has_key(&BindingKey::instance("<urn:uuid:abc>", Some(2))));
        assert!(!binding.has_key(&BindingKey::Contact(binding.contact_key.clone())));
        assert_eq!(
            binding.key(),
            BindingKey::instance("<urn:uuid:abc>", Some(1))
        );
    }
}
