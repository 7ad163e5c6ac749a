//! Least-cost routing: the dialled number (Request-URI user, `+` and
//! separators stripped) is matched against a prefix table (longest prefix
//! wins) and the INVITE relayed to the first carrier of that prefix, with
//! the Request-URI rewritten to `sip:<number>@<gateway>`. When the attempt
//! fails with 408 or 5xx (including the proxy's local timeout and
//! unreachable-gateway 503), `on-branch-failure` tries the next carrier;
//! any other 4xx or 6xx is the callee's answer and goes upstream.
//!
//! Configuration: see README.md. Metrics: `lcr_routed`, `lcr_failover`,
//! `lcr_exhausted`, `lcr_no_route`, `lcr_non_numeric`.

pub mod table;

use serde::{Deserialize, Serialize};
use switchyard_policy::metrics;
use switchyard_policy::prelude::*;

use crate::table::{NonNumeric, Table, fails_over, normalize_number};

/// Per-call state in the ctx: which prefix matched and which carrier is next.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteCtx {
    /// The normalized dialled number.
    pub number: String,
    /// The matched prefix.
    pub prefix: String,
    /// Index into the prefix's carrier list of the next carrier to try.
    pub next: usize,
}

/// The LCR policy.
pub struct Lcr {
    table: Table,
}

impl Lcr {
    /// Relay to the carrier at `ctx.next` of the matched prefix, if any.
    fn attempt(&self, mut ctx: RouteCtx) -> Option<(TargetGroup, RouteCtx)> {
        let &carrier = self.table.carriers_of(&ctx.prefix).get(ctx.next)?;
        let carrier = &self.table.carriers[carrier];
        let group = TargetGroup::single(carrier.target(&ctx.number)).timeout_ms(carrier.timeout_ms);
        ctx.next += 1;
        Some((group, ctx))
    }
}

impl Policy for Lcr {
    fn init(config: Config) -> Result<Self, String> {
        Ok(Lcr {
            table: Table::new(config.parse()?)?,
        })
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        if !req.is_invite() {
            return RequestDecision::proceed();
        }
        let Some(number) = req.ruri_user().and_then(normalize_number) else {
            metrics::counter("lcr_non_numeric", 1);
            return match self.table.non_numeric {
                NonNumeric::Proceed => RequestDecision::proceed(),
                NonNumeric::Reject => RequestDecision::reply(404, "Not Found"),
            };
        };
        let Some((prefix, _)) = self.table.lookup(&number) else {
            metrics::counter("lcr_no_route", 1);
            return RequestDecision::reply(404, "No Route");
        };
        let ctx = RouteCtx {
            prefix: prefix.to_owned(),
            number,
            next: 0,
        };
        match self.attempt(ctx) {
            Some((group, ctx)) => {
                metrics::counter("lcr_routed", 1);
                RequestDecision::relay([group]).with_ctx_json(&ctx)
            }
            None => RequestDecision::reply(404, "No Route"),
        }
    }

    fn on_branch_failure(&self, failure: &BranchFailure) -> FailureDecision {
        let Some(ctx) = failure.ctx_json::<RouteCtx>() else {
            return FailureDecision::fail();
        };
        if !fails_over(failure.best_status()) {
            return FailureDecision::fail();
        }
        match self.attempt(ctx) {
            Some((group, ctx)) => {
                metrics::counter("lcr_failover", 1);
                FailureDecision::relay([group]).with_ctx_json(&ctx)
            }
            None => {
                metrics::counter("lcr_exhausted", 1);
                FailureDecision::fail()
            }
        }
    }
}

switchyard_policy::export_policy!(Lcr);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::{Message, testing};

    const CONFIG: &str = r#"{
        "carriers": {
            "a": {"gateway": "sip:127.0.0.1:5070", "timeout_ms": 5000},
            "b": {"gateway": "sip:127.0.0.1:5071", "route": ["<sip:127.0.0.1:5072;lr>"]}
        },
        "prefixes": {"1": ["a", "b"], "44": ["b"]}
    }"#;

    fn lcr(json: &str) -> Lcr {
        Lcr::init(Config::new(json)).unwrap()
    }

    fn invite(ruri: &str) -> Request {
        Request::parse(
            "carrier",
            format!(
                "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:pbx@acme.test>;tag=1\r\n\
                 To: <{ruri}>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
            ),
        )
        .unwrap()
    }

    fn failure(status: u16, ctx: Vec<u8>) -> BranchFailure {
        let cause = match status {
            408 => Cause::Timeout,
            _ => Cause::Response(Message::new(
                format!("SIP/2.0 {status} X\r\n\r\n").into_bytes(),
            )),
        };
        BranchFailure::new("carrier", Vec::new(), status, cause, Vec::new(), ctx)
    }

    #[test]
    fn routes_and_fails_over_in_order() {
        testing::reset();
        let p = lcr(CONFIG);
        let d = p.on_request(&invite("sip:+1-212-555-0100@acme.test"));
        let g = &d.relay_groups().unwrap()[0];
        assert_eq!(g.targets[0].uri, "sip:12125550100@127.0.0.1:5070");
        assert_eq!(g.timeout_ms, 5000);
        let d = p.on_branch_failure(&failure(503, d.ctx.unwrap()));
        let g = &d.relay_groups().unwrap()[0];
        assert_eq!(g.targets[0].uri, "sip:12125550100@127.0.0.1:5071");
        assert_eq!(g.targets[0].route, ["<sip:127.0.0.1:5072;lr>"]);
        // Both carriers failed: the best response goes upstream.
        assert!(p.on_branch_failure(&failure(408, d.ctx.unwrap())).is_fail());
        assert_eq!(testing::counter("lcr_failover"), 1);
        assert_eq!(testing::counter("lcr_exhausted"), 1);
    }

    #[test]
    fn callee_answers_are_final() {
        let p = lcr(CONFIG);
        for status in [404, 486, 487, 603] {
            let ctx = p.on_request(&invite("sip:15550100@acme.test")).ctx.unwrap();
            assert!(
                p.on_branch_failure(&failure(status, ctx)).is_fail(),
                "{status}"
            );
        }
        assert!(p.on_branch_failure(&failure(503, Vec::new())).is_fail());
    }

    #[test]
    fn unroutable_and_non_numeric() {
        let p = lcr(CONFIG);
        assert_eq!(
            p.on_request(&invite("sip:33123@acme.test")).reply_code(),
            Some(404)
        );
        assert!(p.on_request(&invite("sip:alice@acme.test")).is_proceed());
        assert_eq!(
            p.on_request(&invite("tel:+44-20-7946-0000"))
                .relay_groups()
                .unwrap()[0]
                .targets[0]
                .uri,
            "sip:442079460000@127.0.0.1:5071"
        );
        let strict =
            lcr(&CONFIG.replace("\"prefixes\"", "\"non_numeric\": \"reject\", \"prefixes\""));
        assert_eq!(
            strict
                .on_request(&invite("sip:alice@acme.test"))
                .reply_code(),
            Some(404)
        );
        let options =
            Request::parse("carrier", "OPTIONS sip:15550100@acme.test SIP/2.0\r\n\r\n").unwrap();
        assert!(p.on_request(&options).is_proceed());
    }
}
