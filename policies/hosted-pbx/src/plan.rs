//! The tenant's dial plan: configuration, its validation, and the pure
//! lookups the hooks make (no host calls here).

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_policy::{Scheme, Uri};

/// The `config` table of a hosted-PBX tenant (see README.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbxConfig {
    /// Domain of the extensions' AORs (`sip:<user>@<domain>`). Default: the
    /// host of the Request-URI.
    #[serde(default)]
    pub domain: Option<String>,
    /// Extension number → AOR user the phone registers as (often the same).
    #[serde(default)]
    pub extensions: BTreeMap<String, String>,
    /// Ring-group number → group.
    #[serde(default)]
    pub ring_groups: BTreeMap<String, RingGroup>,
    /// Voicemail URI; `{ext}` and `{user}` are replaced by the called
    /// extension and its AOR user (for a ring group: the group number).
    #[serde(default)]
    pub voicemail: Option<String>,
    /// Final statuses that divert an INVITE to voicemail.
    #[serde(default = "default_voicemail_on")]
    pub voicemail_on: Vec<u16>,
    /// No-answer timeout for calls to an extension, in ms.
    #[serde(default = "default_ring_timeout_ms")]
    pub ring_timeout_ms: u32,
    /// Callers refused: a From user (`"666"`) or a From URI (`"sip:spam@evil.test"`).
    #[serde(default)]
    pub blocked_callers: Vec<String>,
    /// Status for blocked callers: 403 Forbidden or 603 Decline.
    #[serde(default = "default_block_code")]
    pub block_code: u16,
    /// Most bindings one AOR may hold (on-register limit).
    #[serde(default)]
    pub max_registrations: Option<u32>,
    /// Highest registration expiry granted, in seconds.
    #[serde(default)]
    pub max_expires: Option<u32>,
    /// Calls an extension may be in at once (as caller or callee, across
    /// the cluster): a call to an extension at its limit is busy (486, or
    /// its voicemail). None: no limit beyond the node's `[dialogs]`.
    #[serde(default)]
    pub max_calls_per_extension: Option<u32>,
    /// Refuse (404) REGISTERs of users that are not in `extensions`.
    #[serde(default = "yes")]
    pub register_known_only: bool,
}

/// How a ring group rings its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every member at once; `timeout_ms` for the whole group.
    #[default]
    Parallel,
    /// One member after another in the listed order (hunt group);
    /// `timeout_ms` per member.
    Serial,
}

/// A ring group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingGroup {
    /// Member extensions, in hunt order.
    pub members: Vec<String>,
    /// Parallel (default) or serial.
    #[serde(default)]
    pub strategy: Strategy,
    /// Group (parallel) or per-member (serial) no-answer timeout; default
    /// the plan's `ring_timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// Voicemail of this group instead of the plan's.
    #[serde(default)]
    pub voicemail: Option<String>,
}

fn default_voicemail_on() -> Vec<u16> {
    vec![408, 480, 486]
}

fn default_ring_timeout_ms() -> u32 {
    20_000
}

fn default_block_code() -> u16 {
    603
}

fn yes() -> bool {
    true
}

/// What a dialled number is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest<'a> {
    /// An extension (dialled by number or by its AOR user).
    Extension {
        /// The extension number.
        ext: &'a str,
        /// The AOR user it rings.
        user: &'a str,
    },
    /// A ring group.
    Group {
        /// The group number.
        number: &'a str,
        /// Its definition.
        group: &'a RingGroup,
    },
    /// Not in the plan.
    Unknown,
}

/// A validated dial plan.
#[derive(Debug)]
pub struct Plan {
    /// The configuration it was built from.
    pub config: PbxConfig,
}

impl Plan {
    /// Validates `config`: ring-group members must be extensions, numbers
    /// unique, URIs and status codes well-formed.
    pub fn new(config: PbxConfig) -> Result<Plan, String> {
        for (number, group) in &config.ring_groups {
            if config.extensions.contains_key(number) {
                return Err(format!("ring group {number} is also an extension"));
            }
            if group.members.is_empty() {
                return Err(format!("ring group {number} has no members"));
            }
            if let Some(m) = group
                .members
                .iter()
                .find(|m| !config.extensions.contains_key(*m))
            {
                return Err(format!(
                    "ring group {number}: member {m} is not an extension"
                ));
            }
            if let Some(vm) = &group.voicemail {
                check_template(vm, &format!("ring group {number} voicemail"))?;
            }
        }
        if let Some(vm) = &config.voicemail {
            check_template(vm, "voicemail")?;
        }
        if let Some(code) = config
            .voicemail_on
            .iter()
            .find(|c| !(300..=699).contains(*c))
        {
            return Err(format!(
                "voicemail_on: {code} is not a final failure status (300..=699)"
            ));
        }
        if !matches!(config.block_code, 403 | 603) {
            return Err(format!(
                "block_code must be 403 or 603, got {}",
                config.block_code
            ));
        }
        for entry in config.blocked_callers.iter().filter(|e| e.contains(':')) {
            Uri::parse(entry).map_err(|e| format!("blocked_callers: {entry:?}: {e}"))?;
        }
        Ok(Plan { config })
    }

    /// Classifies the Request-URI user.
    pub fn resolve<'a>(&'a self, dialled: &'a str) -> Dest<'a> {
        let c = &self.config;
        if let Some((ext, user)) = c.extensions.get_key_value(dialled) {
            return Dest::Extension { ext, user };
        }
        if let Some((number, group)) = c.ring_groups.get_key_value(dialled) {
            return Dest::Group { number, group };
        }
        match c.extensions.iter().find(|(_, user)| *user == dialled) {
            Some((ext, user)) => Dest::Extension { ext, user },
            None => Dest::Unknown,
        }
    }

    /// The AOR user of an extension.
    pub fn user_of(&self, ext: &str) -> Option<&str> {
        self.config.extensions.get(ext).map(String::as_str)
    }

    /// True if `user` may register (an extension number or AOR user).
    pub fn is_known_user(&self, user: &str) -> bool {
        !matches!(self.resolve(user), Dest::Unknown | Dest::Group { .. })
    }

    /// True if a caller with this From user / URI is blocked.
    pub fn is_blocked(&self, from_user: Option<&str>, from_uri: Option<&Uri<'_>>) -> bool {
        self.config.blocked_callers.iter().any(|entry| {
            if entry.contains(':') {
                match (Uri::parse(entry), from_uri) {
                    (Ok(blocked), Some(from)) => same_address(&blocked, from),
                    _ => false,
                }
            } else {
                from_user == Some(entry.as_str())
            }
        })
    }

    /// The voicemail URI for a call to `ext` (AOR user `user`), from the
    /// group's or the plan's template.
    pub fn voicemail(&self, template: Option<&str>, ext: &str, user: &str) -> Option<String> {
        let template = template.or(self.config.voicemail.as_deref())?;
        Some(template.replace("{ext}", ext).replace("{user}", user))
    }

    /// True if `status` diverts to voicemail.
    pub fn diverts(&self, status: u16) -> bool {
        self.config.voicemail_on.contains(&status)
    }
}

/// The voicemail template must give a SIP URI once filled in.
fn check_template(template: &str, what: &str) -> Result<(), String> {
    let sample = template.replace("{ext}", "100").replace("{user}", "user");
    match Uri::parse(&sample) {
        Ok(uri) if uri.is_sip() => Ok(()),
        Ok(_) => Err(format!("{what}: {template:?} is not a sip: or sips: URI")),
        Err(e) => Err(format!("{what}: {template:?}: {e}")),
    }
}

/// Same user and host (case-insensitive host, RFC 3261 §19.1.4), ignoring
/// parameters; `sip:` and `sips:` compare equal for this purpose.
fn same_address(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    fn user<'a>(u: &Uri<'a>) -> Option<&'a str> {
        match u.scheme {
            Scheme::Tel => None,
            _ => u.user,
        }
    }
    user(a) == user(b) && a.host.to_string().eq_ignore_ascii_case(&b.host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<Plan, String> {
        Plan::new(switchyard_policy::Config::new(json).parse()?)
    }

    const ACME: &str = r#"{
        "extensions": {"101": "alice", "102": "bob", "103": "103"},
        "ring_groups": {"600": {"members": ["101", "102"]},
                        "601": {"members": ["102", "101"], "strategy": "serial", "timeout_ms": 5000}},
        "voicemail": "sip:vm-{ext}@vm.acme.test",
        "blocked_callers": ["666", "sip:spam@Evil.Test"]
    }"#;

    #[test]
    fn resolves_extensions_groups_and_users() {
        let p = plan(ACME).unwrap();
        assert_eq!(
            p.resolve("101"),
            Dest::Extension {
                ext: "101",
                user: "alice"
            }
        );
        assert_eq!(
            p.resolve("alice"),
            Dest::Extension {
                ext: "101",
                user: "alice"
            }
        );
        assert_eq!(
            p.resolve("103"),
            Dest::Extension {
                ext: "103",
                user: "103"
            }
        );
        assert!(
            matches!(p.resolve("601"), Dest::Group { number: "601", group } if group.strategy == Strategy::Serial)
        );
        assert_eq!(p.resolve("999"), Dest::Unknown);
        assert!(p.is_known_user("bob") && p.is_known_user("102") && !p.is_known_user("600"));
    }

    #[test]
    fn blocks_by_user_or_uri() {
        let p = plan(ACME).unwrap();
        let spam = Uri::parse("sip:spam@evil.test;transport=tcp").unwrap();
        assert!(p.is_blocked(Some("spam"), Some(&spam)));
        assert!(p.is_blocked(Some("666"), None));
        let ok = Uri::parse("sip:spam@good.test").unwrap();
        assert!(!p.is_blocked(Some("spam"), Some(&ok)));
    }

    #[test]
    fn voicemail_template() {
        let p = plan(ACME).unwrap();
        assert_eq!(
            p.voicemail(None, "101", "alice").as_deref(),
            Some("sip:vm-101@vm.acme.test")
        );
        assert_eq!(
            p.voicemail(Some("sip:{user}@vm"), "101", "alice")
                .as_deref(),
            Some("sip:alice@vm")
        );
        assert!(p.diverts(486) && p.diverts(408) && !p.diverts(487) && !p.diverts(503));
    }

    #[test]
    fn refuses_inconsistent_plans() {
        let err = |json| plan(json).unwrap_err();
        assert!(
            err(r#"{"ring_groups": {"600": {"members": ["101"]}}}"#)
                .contains("member 101 is not an extension")
        );
        assert!(
            err(r#"{"extensions": {"600": "x"}, "ring_groups": {"600": {"members": ["600"]}}}"#)
                .contains("also an extension")
        );
        assert!(err(r#"{"voicemail": "mailto:x@y"}"#).contains("not a sip"));
        assert!(err(r#"{"block_code": 486}"#).contains("403 or 603"));
        assert!(err(r#"{"extensons": {}}"#).contains("unknown field `extensons`"));
        assert!(
            err(r#"{"ring_groups": {"6": {"members": ["1"], "strategy": "random"}}}"#)
                .contains("unknown variant")
        );
    }
}
