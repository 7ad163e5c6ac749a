//! Hosted PBX: one policy instance per tenant, each with its own dial plan
//! (so extension `101` exists independently in every tenant).
//!
//! * `on-request`: blocked callers get 603 (or 403). An INVITE to an
//!   extension rings its bindings (q-ordered groups, `ring_timeout_ms`); to
//!   a ring group, its members in parallel or one after another; nobody
//!   registered → voicemail, else 480; unknown number → 404. Other methods
//!   proceed with default routing (R-URI rewritten to the extension's AOR).
//! * `on-branch-failure`: busy / no answer / unavailable (`voicemail_on`)
//!   → voicemail, once per call (remembered in the ctx).
//! * `on-register`: unknown users → 404; `max_registrations` and
//!   `max_expires` as registrar limits.
//! * `max_calls_per_extension`: an extension already in that many calls
//!   (`calls.user-calls`, cluster-wide) is busy: voicemail, else 486.
//! * Dialog hooks: answered calls and their durations as metrics.
//!
//! Configuration: see README.md. Metrics: `pbx_calls_extension`,
//! `pbx_calls_ring_group`, `pbx_not_found`, `pbx_blocked`,
//! `pbx_unavailable`, `pbx_voicemail`, `pbx_register_refused`, `pbx_busy`,
//! `pbx_answered`, `pbx_call_seconds` (histogram).

pub mod plan;

use serde::{Deserialize, Serialize};
use switchyard_policy::prelude::*;
use switchyard_policy::{Dialog, calls, location, metrics};

use crate::plan::{Dest, Plan, Strategy};

/// Per-call state carried in the ctx from `on-request` to `on-branch-failure`.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallCtx {
    /// Where to divert on busy/no answer (none: no voicemail for this call).
    #[serde(default)]
    pub voicemail: Option<String>,
    /// Voicemail was already tried: never divert twice (no loops).
    #[serde(default)]
    pub voicemail_tried: bool,
}

/// The hosted-PBX policy.
pub struct HostedPbx {
    plan: Plan,
}

impl HostedPbx {
    /// The AOR of `user` for a request whose R-URI host is `ruri_host`.
    fn aor(&self, user: &str, ruri_host: &str) -> String {
        switchyard_policy::aor(
            user,
            self.plan.config.domain.as_deref().unwrap_or(ruri_host),
        )
    }

    /// Bindings of an extension's AOR: the host's prefetch when the
    /// Request-URI already is that AOR, else a location lookup.
    fn bindings_of(&self, req: &Request, user: &str, ruri_host: &str) -> Vec<Binding> {
        let aor = self.aor(user, ruri_host);
        if req.ruri_aor().is_some_and(|r| r.eq_ignore_ascii_case(&aor)) {
            req.bindings().to_vec()
        } else {
            location::lookup(&aor)
        }
    }

    fn ring(&self, req: &Request, dialled: &str, ruri_host: &str) -> RequestDecision {
        let timeout = self.plan.config.ring_timeout_ms;
        let (groups, voicemail) = match self.plan.resolve(dialled) {
            Dest::Unknown => {
                metrics::counter("pbx_not_found", 1);
                return RequestDecision::reply(404, "Not Found");
            }
            Dest::Extension { ext, user } => {
                metrics::counter("pbx_calls_extension", 1);
                let limit = self.plan.config.max_calls_per_extension;
                if limit.is_some_and(|max| calls::user_calls(&self.aor(user, ruri_host)) >= max) {
                    metrics::counter("pbx_busy", 1);
                    return match self.plan.voicemail(None, ext, user) {
                        Some(vm) => RequestDecision::relay([TargetGroup::single(Target::uri(vm))]),
                        None => RequestDecision::reply(486, "Busy Here"),
                    };
                }
                let bindings = self.bindings_of(req, user, ruri_host);
                (
                    TargetGroup::by_q(&bindings, timeout),
                    self.plan.voicemail(None, ext, user),
                )
            }
            Dest::Group { number, group } => {
                metrics::counter("pbx_calls_ring_group", 1);
                let timeout = group.timeout_ms.unwrap_or(timeout);
                let members = group.members.iter().filter_map(|ext| {
                    let user = self.plan.user_of(ext)?;
                    let targets: Vec<Target> = self
                        .bindings_of(req, user, ruri_host)
                        .iter()
                        .map(Target::binding)
                        .collect();
                    (!targets.is_empty()).then_some(targets)
                });
                let groups = match group.strategy {
                    Strategy::Parallel => {
                        let all: Vec<Target> = members.flatten().collect();
                        if all.is_empty() {
                            Vec::new()
                        } else {
                            vec![TargetGroup::parallel(all).timeout_ms(timeout)]
                        }
                    }
                    Strategy::Serial => members
                        .map(|targets| TargetGroup::parallel(targets).timeout_ms(timeout))
                        .collect(),
                };
                (
                    groups,
                    self.plan
                        .voicemail(group.voicemail.as_deref(), number, number),
                )
            }
        };
        if groups.is_empty() {
            // Nobody registered: straight to voicemail, else 480 (RFC 3261 §21.4.18).
            return match voicemail {
                Some(vm) => {
                    metrics::counter("pbx_voicemail", 1);
                    RequestDecision::relay([TargetGroup::single(Target::uri(vm))]).with_ctx_json(
                        &CallCtx {
                            voicemail: None,
                            voicemail_tried: true,
                        },
                    )
                }
                None => {
                    metrics::counter("pbx_unavailable", 1);
                    RequestDecision::reply(480, "Temporarily Unavailable")
                }
            };
        }
        RequestDecision::relay(groups).with_ctx_json(&CallCtx {
            voicemail,
            voicemail_tried: false,
        })
    }
}

impl Policy for HostedPbx {
    const DIALOG_HOOKS: bool = true;

    fn init(config: Config) -> Result<Self, String> {
        Ok(HostedPbx {
            plan: Plan::new(config.parse()?)?,
        })
    }

    fn on_dialog_start(&self, _dialog: &Dialog) {
        metrics::counter("pbx_answered", 1);
    }

    fn on_dialog_end(&self, dialog: &Dialog) {
        metrics::histogram("pbx_call_seconds", dialog.duration_ms as f64 / 1000.0);
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        // Cheap checks first: the message is parsed only for From.
        if !self.plan.config.blocked_callers.is_empty() {
            let from = req.from_uri();
            if self.plan.is_blocked(req.from_user(), from.as_ref()) {
                metrics::counter("pbx_blocked", 1);
                let reason = if self.plan.config.block_code == 403 {
                    "Forbidden"
                } else {
                    "Decline"
                };
                return RequestDecision::reply(self.plan.config.block_code, reason);
            }
        }
        let Some(ruri) = req.request_uri() else {
            return RequestDecision::proceed();
        };
        let (Some(dialled), host) = (ruri.user, ruri.host.to_string()) else {
            return RequestDecision::proceed();
        };
        if req.is_invite() {
            return self.ring(req, dialled, &host);
        }
        // MESSAGE, SUBSCRIBE, OPTIONS, ...: default routing, to the AOR the
        // extension registers as.
        match self.plan.resolve(dialled) {
            Dest::Extension { user, .. } if user != dialled => {
                RequestDecision::proceed().set_request_uri(self.aor(user, &host))
            }
            _ => RequestDecision::proceed(),
        }
    }

    fn on_branch_failure(&self, failure: &BranchFailure) -> FailureDecision {
        let Some(ctx) = failure.ctx_json::<CallCtx>() else {
            return FailureDecision::fail();
        };
        match ctx.voicemail {
            Some(vm) if !ctx.voicemail_tried && self.plan.diverts(failure.best_status()) => {
                metrics::counter("pbx_voicemail", 1);
                FailureDecision::relay([TargetGroup::single(Target::uri(vm))]).with_ctx_json(
                    &CallCtx {
                        voicemail: None,
                        voicemail_tried: true,
                    },
                )
            }
            _ => FailureDecision::fail(),
        }
    }

    fn on_register(&self, reg: &Register) -> RegisterDecision {
        let c = &self.plan.config;
        if c.register_known_only && !reg.aor_user().is_some_and(|u| self.plan.is_known_user(u)) {
            metrics::counter("pbx_register_refused", 1);
            return RegisterDecision::reject(404, "Not Found");
        }
        let mut limits = RegisterLimits::new();
        limits.max_contacts = c.max_registrations;
        limits.max_expires = c.max_expires;
        if limits == RegisterLimits::new() {
            RegisterDecision::allow()
        } else {
            RegisterDecision::limit(limits)
        }
    }
}

switchyard_policy::export_policy!(HostedPbx);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::{RequestAction, testing};

    const ACME: &str = r#"{
        "extensions": {"101": "alice", "102": "bob", "103": "103"},
        "ring_groups": {"600": {"members": ["101", "102"], "timeout_ms": 15000},
                        "601": {"members": ["101", "102"], "strategy": "serial", "timeout_ms": 5000}},
        "voicemail": "sip:vm-{ext}@127.0.0.1:5090",
        "blocked_callers": ["666"],
        "max_registrations": 2,
        "max_expires": 3600
    }"#;

    fn pbx(json: &str) -> HostedPbx {
        HostedPbx::init(Config::new(json)).unwrap()
    }

    fn request(method: &str, to: &str, from: &str) -> Request {
        Request::parse(
            "acme",
            format!(
                "{method} sip:{to}@acme.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                 From: <sip:{from}@acme.test>;tag=1\r\nTo: <sip:{to}@acme.test>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n"
            ),
        )
        .unwrap()
    }

    fn uris(groups: &[TargetGroup]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.targets.iter().map(|t| t.uri.as_str()).collect())
            .collect()
    }

    fn register_phones() {
        testing::reset();
        testing::set_bindings(
            "sip:alice@acme.test",
            vec![Binding::new("sip:alice@192.0.2.10").with_path(["<sip:edge.acme.test;lr>"])],
        );
        testing::set_bindings(
            "sip:bob@acme.test",
            vec![Binding::new("sip:bob@192.0.2.11")],
        );
    }

    #[test]
    fn extension_rings_its_bindings() {
        register_phones();
        let d = pbx(ACME).on_request(&request("INVITE", "101", "bob"));
        let groups = d.relay_groups().unwrap();
        assert_eq!(uris(groups), [["sip:alice@192.0.2.10"]]);
        assert_eq!(groups[0].targets[0].route, ["<sip:edge.acme.test;lr>"]);
        assert_eq!(groups[0].timeout_ms, 20_000);
        let ctx: CallCtx = serde_json_ctx(&d.ctx);
        assert_eq!(ctx.voicemail.as_deref(), Some("sip:vm-101@127.0.0.1:5090"));
    }

    #[test]
    fn an_extension_at_its_call_limit_is_busy() {
        register_phones();
        let limited = ACME.replacen('{', r#"{"max_calls_per_extension": 1,"#, 1);
        let no_vm = limited.replace(r#""voicemail": "sip:vm-{ext}@127.0.0.1:5090","#, "");
        testing::with_host(|h| h.calls.insert("alice@acme.test".into(), 1));
        let d = pbx(&limited).on_request(&request("INVITE", "101", "bob"));
        assert_eq!(
            uris(d.relay_groups().unwrap()),
            [["sip:vm-101@127.0.0.1:5090"]]
        );
        let d = pbx(&no_vm).on_request(&request("INVITE", "101", "bob"));
        assert_eq!(d.reply_code(), Some(486));
        assert_eq!(testing::counter("pbx_busy"), 2);
        // bob is in no call: his phone rings.
        let d = pbx(&no_vm).on_request(&request("INVITE", "102", "alice"));
        assert_eq!(uris(d.relay_groups().unwrap()), [["sip:bob@192.0.2.11"]]);
    }

    fn serde_json_ctx(ctx: &Option<Vec<u8>>) -> CallCtx {
        let f = BranchFailure::new(
            "acme",
            Vec::new(),
            486,
            Cause::Timeout,
            Vec::new(),
            ctx.clone().unwrap(),
        );
        f.ctx_json().unwrap()
    }

    #[test]
    fn own_aor_uses_the_prefetched_bindings() {
        testing::reset(); // the location service knows nothing
        let req = request("INVITE", "alice", "bob")
            .with_bindings(vec![Binding::new("sip:alice@192.0.2.99")]);
        let d = pbx(ACME).on_request(&req);
        assert_eq!(uris(d.relay_groups().unwrap()), [["sip:alice@192.0.2.99"]]);
    }

    #[test]
    fn ring_groups_parallel_and_serial() {
        register_phones();
        let p = pbx(ACME);
        let d = p.on_request(&request("INVITE", "600", "carol"));
        let groups = d.relay_groups().unwrap();
        assert_eq!(
            uris(groups),
            [vec!["sip:alice@192.0.2.10", "sip:bob@192.0.2.11"]]
        );
        assert_eq!(groups[0].timeout_ms, 15_000);
        let d = p.on_request(&request("INVITE", "601", "carol"));
        let groups = d.relay_groups().unwrap();
        assert_eq!(
            uris(groups),
            [["sip:alice@192.0.2.10"], ["sip:bob@192.0.2.11"]]
        );
        assert!(groups.iter().all(|g| g.timeout_ms == 5000));
    }

    #[test]
    fn nobody_registered_goes_to_voicemail_or_480() {
        testing::reset();
        let d = pbx(ACME).on_request(&request("INVITE", "102", "alice"));
        assert_eq!(
            uris(d.relay_groups().unwrap()),
            [["sip:vm-102@127.0.0.1:5090"]]
        );
        assert!(serde_json_ctx(&d.ctx).voicemail_tried);
        let d =
            pbx(r#"{"extensions": {"102": "bob"}}"#).on_request(&request("INVITE", "102", "alice"));
        assert_eq!(d.reply_code(), Some(480));
    }

    #[test]
    fn unknown_blocked_and_other_methods() {
        register_phones();
        let p = pbx(ACME);
        assert_eq!(
            p.on_request(&request("INVITE", "999", "alice"))
                .reply_code(),
            Some(404)
        );
        assert_eq!(
            p.on_request(&request("INVITE", "101", "666")).reply_code(),
            Some(603)
        );
        assert_eq!(testing::counter("pbx_blocked"), 1);
        let d = p.on_request(&request("MESSAGE", "101", "bob"));
        assert!(d.is_proceed());
        assert_eq!(d.request_uri.as_deref(), Some("sip:alice@acme.test"));
        let d = p.on_request(&request("OPTIONS", "999", "bob"));
        assert_eq!(d, RequestDecision::proceed());
        let blocked = pbx(r#"{"blocked_callers": ["sip:666@acme.test"], "block_code": 403}"#);
        assert_eq!(
            blocked
                .on_request(&request("MESSAGE", "x", "666"))
                .reply_code(),
            Some(403)
        );
    }

    #[test]
    fn busy_goes_to_voicemail_once() {
        register_phones();
        let p = pbx(ACME);
        let ctx = p.on_request(&request("INVITE", "101", "bob")).ctx.unwrap();
        let busy = "SIP/2.0 486 Busy Here\r\n\r\n";
        let f = BranchFailure::new(
            "acme",
            Vec::new(),
            486,
            Cause::Response(switchyard_policy::Message::new(busy.as_bytes().to_vec())),
            vec!["sip:alice@192.0.2.10".into()],
            ctx,
        );
        let d = p.on_branch_failure(&f);
        assert_eq!(
            uris(d.relay_groups().unwrap()),
            [["sip:vm-101@127.0.0.1:5090"]]
        );
        // The voicemail server is busy too: fail, no loop.
        let f = BranchFailure::new(
            "acme",
            Vec::new(),
            486,
            Cause::Timeout,
            Vec::new(),
            d.ctx.unwrap(),
        );
        assert!(p.on_branch_failure(&f).is_fail());
        // 487 (caller hung up) and 603 are not diverted; no ctx: fail.
        let ctx = p.on_request(&request("INVITE", "101", "bob")).ctx.unwrap();
        let f = BranchFailure::new("acme", Vec::new(), 487, Cause::Timeout, Vec::new(), ctx);
        assert!(p.on_branch_failure(&f).is_fail());
        let f = BranchFailure::new(
            "acme",
            Vec::new(),
            408,
            Cause::Timeout,
            Vec::new(),
            Vec::new(),
        );
        assert!(p.on_branch_failure(&f).is_fail());
    }

    #[test]
    fn same_extension_in_two_tenants() {
        register_phones();
        testing::set_bindings(
            "sip:zed@globex.test",
            vec![Binding::new("sip:zed@198.51.100.1")],
        );
        let acme = pbx(ACME);
        let globex = pbx(r#"{"extensions": {"101": "zed"}, "domain": "globex.test"}"#);
        let req = request("INVITE", "101", "x");
        assert_eq!(
            uris(acme.on_request(&req).relay_groups().unwrap()),
            [["sip:alice@192.0.2.10"]]
        );
        assert_eq!(
            uris(globex.on_request(&req).relay_groups().unwrap()),
            [["sip:zed@198.51.100.1"]]
        );
    }

    #[test]
    fn registrations() {
        let p = pbx(ACME);
        let reg = |user: &str| {
            Register::parse(
                "acme",
                format!(
                    "REGISTER sip:acme.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:{user}@acme.test>;tag=1\r\n\
                     To: <sip:{user}@acme.test>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@192.0.2.1>\r\n\r\n"
                ),
            )
            .unwrap()
        };
        assert_eq!(
            p.on_register(&reg("alice")),
            RegisterDecision::limit(RegisterLimits::new().max_contacts(2).max_expires(3600))
        );
        assert_eq!(p.on_register(&reg("103")), p.on_register(&reg("alice")));
        assert!(
            matches!(p.on_register(&reg("mallory")), RegisterDecision::Reject(r) if r.code == 404)
        );
        let open = pbx(r#"{"register_known_only": false}"#);
        assert_eq!(open.on_register(&reg("mallory")), RegisterDecision::allow());
    }

    #[test]
    fn reply_carries_no_relay() {
        let d = pbx(ACME).on_request(&request("INVITE", "999", "x"));
        assert!(matches!(d.action, RequestAction::Reply(_)));
    }
}
