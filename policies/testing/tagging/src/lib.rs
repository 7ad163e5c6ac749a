//! A well-behaved test policy whose every decision is visible on the wire,
//! for hot-swap and host-import tests. Configuration (all keys but
//! `version` optional):
//!
//! ```toml
//! [tenants.policies.acme.config]
//! version = "v2"                 # X-Policy-Version on everything this policy touches
//! header = "X-Policy-Version"    # name of that header
//! probe = true                   # add X-Bindings / X-Prefetched-Bindings / X-Call-Count / X-Clock-Ms / X-Caller
//! max_contacts = 2               # on-register: limit max-contacts
//! delegates = { bob = ["alice"] } # on-register: alice may register bob's AOR
//! failover = "sip:vm@127.0.0.1:5090"  # on-branch-failure: relay here once
//! reply_all = { code = 503, reason = "Down For Test" }
//! [tenants.policies.acme.config.replies]
//! busy = { code = 486, reason = "Busy Here" }   # R-URI user -> reply
//! ```
//!
//! * `on-request`: a reply from `reply_all` or `replies[R-URI user]`, else
//!   proceed; either way with `<header>: <version>`. With `probe`, forwarded
//!   requests also carry `X-Bindings` (`location::lookup` of the R-URI's
//!   AOR), `X-Prefetched-Bindings` (the host's prefetch), `X-Call-Count`
//!   (`kv::incr("tagging:calls")`), `X-Clock-Ms` (`clock::now_ms`) and
//!   `X-Caller` (`caller::origin`: `authenticated user@realm`, `trusted`,
//!   `anonymous`, `unchecked`).
//!   The ctx is set to the version.
//! * `on-response`: pass with `<header>: <version>`, plus `X-Policy-Ctx:
//!   <ctx>` with `probe` (shows the ctx travelled from `on-request`).
//! * `on-register`: a user registering someone else's AOR is refused 403
//!   unless `delegates[aor user]` names them; then `max_contacts` if set,
//!   else allow.
//! * `on-branch-failure`: relay once to `failover` if set, else fail.
//! * `on-complete`: counter `tagging_complete`, histogram `tagging_duration_ms`.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_policy::caller::{self, Origin};
use switchyard_policy::prelude::*;
use switchyard_policy::{clock, kv, location, metrics};

/// `caller::origin` as the `X-Caller` probe header shows it.
fn describe(origin: Option<Origin>) -> String {
    match origin {
        None => "none".into(),
        Some(Origin::Unchecked) => "unchecked".into(),
        Some(Origin::Anonymous) => "anonymous".into(),
        Some(Origin::Trusted) => "trusted".into(),
        Some(Origin::Authenticated(who)) => format!("authenticated {}@{}", who.user, who.realm),
    }
}

/// A configured final response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// 300..=699.
    pub code: u16,
    /// Empty for the standard phrase.
    #[serde(default)]
    pub reason: String,
}

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The version tag.
    pub version: String,
    /// Name of the tag header.
    #[serde(default = "default_header")]
    pub header: String,
    /// Add the host-import probe headers.
    #[serde(default)]
    pub probe: bool,
    /// R-URI user → reply.
    #[serde(default)]
    pub replies: BTreeMap<String, ReplySpec>,
    /// Reply to every request with this.
    #[serde(default)]
    pub reply_all: Option<ReplySpec>,
    /// on-register limit.
    #[serde(default)]
    pub max_contacts: Option<u32>,
    /// on-register: AOR user → the users who may register it besides
    /// its own (third-party registration); anyone else is refused 403.
    #[serde(default)]
    pub delegates: BTreeMap<String, Vec<String>>,
    /// on-branch-failure target (tried once).
    #[serde(default)]
    pub failover: Option<String>,
}

fn default_header() -> String {
    "X-Policy-Version".into()
}

/// The ctx this policy keeps per transaction.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Ctx {
    version: String,
    failover_tried: bool,
}

/// The tagging policy.
pub struct Tagging(Settings);

impl Policy for Tagging {
    fn init(config: Config) -> Result<Self, String> {
        let settings: Settings = config.parse()?;
        for spec in settings.reply_all.iter().chain(settings.replies.values()) {
            if !(300..=699).contains(&spec.code) {
                return Err(format!("reply code {} is not 300..=699", spec.code));
            }
        }
        Ok(Tagging(settings))
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        let s = &self.0;
        let configured = s
            .reply_all
            .as_ref()
            .or_else(|| req.ruri_user().and_then(|u| s.replies.get(u)));
        let decision = match configured {
            Some(spec) => RequestDecision::reply(spec.code, spec.reason.clone()),
            None => {
                let mut d = RequestDecision::proceed();
                if s.probe {
                    let found = req.ruri_aor().map_or(0, |aor| location::lookup(&aor).len());
                    d = d
                        .with_header("X-Bindings", found.to_string())
                        .with_header("X-Prefetched-Bindings", req.bindings().len().to_string())
                        .with_header("X-Call-Count", kv::incr("tagging:calls", 1, 0).to_string())
                        .with_header("X-Clock-Ms", clock::now_ms().to_string())
                        .with_header("X-Caller", describe(caller::origin()));
                }
                d
            }
        };
        decision
            .with_header(s.header.clone(), s.version.clone())
            .with_ctx_json(&Ctx {
                version: s.version.clone(),
                failover_tried: false,
            })
    }

    fn on_response(&self, resp: &Response) -> ResponseDecision {
        let mut d =
            ResponseDecision::pass().with_header(self.0.header.clone(), self.0.version.clone());
        if self.0.probe && !resp.ctx().is_empty() {
            d = d.with_header(
                "X-Policy-Ctx",
                String::from_utf8_lossy(resp.ctx()).into_owned(),
            );
        }
        d
    }

    fn on_register(&self, reg: &Register) -> RegisterDecision {
        if let Some(Origin::Authenticated(who)) = caller::origin() {
            let owner = reg.aor_user().unwrap_or_default();
            let delegate = self
                .0
                .delegates
                .get(owner)
                .is_some_and(|d| d.contains(&who.user));
            if who.user != owner && !delegate {
                return RegisterDecision::reject(403, "Not Your AOR");
            }
        }
        match self.0.max_contacts {
            Some(n) => RegisterDecision::limit(RegisterLimits::new().max_contacts(n)),
            None => RegisterDecision::allow(),
        }
    }

    fn on_branch_failure(&self, failure: &BranchFailure) -> FailureDecision {
        let Some(target) = &self.0.failover else {
            return FailureDecision::fail();
        };
        let mut ctx: Ctx = failure.ctx_json().unwrap_or(Ctx {
            version: self.0.version.clone(),
            failover_tried: false,
        });
        if ctx.failover_tried {
            return FailureDecision::fail();
        }
        ctx.failover_tried = true;
        FailureDecision::relay([TargetGroup::single(Target::uri(target.clone()))])
            .with_ctx_json(&ctx)
    }

    fn on_complete(&self, summary: &Summary) {
        metrics::counter("tagging_complete", 1);
        metrics::histogram("tagging_duration_ms", f64::from(summary.duration_ms()));
    }
}

switchyard_policy::export_policy!(Tagging);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::{HeaderEdit, RequestAction, testing};

    fn invite(user: &str) -> Request {
        Request::parse(
            "acme",
            format!(
                "INVITE sip:{user}@acme.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@acme.test>;tag=1\r\nTo: <sip:{user}@acme.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
            ),
        )
        .unwrap()
    }

    fn added(d: &RequestDecision, name: &str) -> Option<String> {
        d.headers.iter().find_map(|e| match e {
            HeaderEdit::Add(h) if h.name == name => Some(h.value.clone()),
            _ => None,
        })
    }

    #[test]
    fn tags_and_replies() {
        testing::reset();
        testing::set_bindings("sip:bob@acme.test", vec![Binding::new("sip:bob@192.0.2.7")]);
        let p = Tagging::init(Config::new(
            r#"{"version":"v2","probe":true,"replies":{"busy":{"code":486,"reason":"Busy Here"}}}"#,
        ))
        .unwrap();
        let d = p.on_request(&invite("bob"));
        assert!(d.is_proceed());
        assert_eq!(added(&d, "X-Policy-Version").as_deref(), Some("v2"));
        assert_eq!(added(&d, "X-Bindings").as_deref(), Some("1"));
        assert_eq!(added(&d, "X-Call-Count").as_deref(), Some("1"));
        assert_eq!(added(&d, "X-Caller").as_deref(), Some("none"));
        testing::with_host(|h| {
            h.origin = Some(Origin::Authenticated(caller::Identity {
                user: "alice".into(),
                realm: "acme.test".into(),
            }))
        });
        let d = p.on_request(&invite("bob"));
        assert_eq!(
            added(&d, "X-Caller").as_deref(),
            Some("authenticated alice@acme.test")
        );
        let d = p.on_request(&invite("busy"));
        match &d.action {
            RequestAction::Reply(r) => {
                assert_eq!(r.code, 486);
                assert_eq!(r.headers[0].value, "v2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failover_once() {
        let p = Tagging::init(Config::new(
            r#"{"version":"v1","failover":"sip:vm@127.0.0.1:5090"}"#,
        ))
        .unwrap();
        let ctx = p.on_request(&invite("bob")).ctx.unwrap();
        let f = BranchFailure::new("acme", Vec::new(), 486, Cause::Timeout, Vec::new(), ctx);
        let d = p.on_branch_failure(&f);
        assert_eq!(
            d.relay_groups().unwrap()[0].targets[0].uri,
            "sip:vm@127.0.0.1:5090"
        );
        let f = BranchFailure::new(
            "acme",
            Vec::new(),
            486,
            Cause::Timeout,
            Vec::new(),
            d.ctx.unwrap(),
        );
        assert!(p.on_branch_failure(&f).is_fail());
    }

    #[test]
    fn refuses_bad_config() {
        assert!(Tagging::init(Config::new("{}")).is_err());
        assert!(Tagging::init(Config::new(r#"{"version":"v","reply_all":{"code":200}}"#)).is_err());
    }
}
