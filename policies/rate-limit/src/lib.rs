//! Per-source rate limiting with fixed windows counted in the tenant's
//! `kv` store (`kv::incr` on a key per source IP and window, like
//! Kamailio's pike/ratelimit). Over the limit, initial requests and
//! REGISTERs are answered `503 Service Unavailable` with `Retry-After` set
//! to the rest of the window (SIP has no 429; RFC 3261 §21.5.4 lets a
//! client retry after Retry-After). Sources in `exempt` are never limited.
//!
//! The counters live on one node: behind a load balancer each node limits
//! what it sees. Configuration: see README.md. Metrics:
//! `ratelimit_rejected_requests`, `ratelimit_rejected_registers`.

pub mod limits;

use std::net::IpAddr;

use switchyard_policy::prelude::*;
use switchyard_policy::{Source, clock, kv, metrics};

use crate::limits::{Net, RateConfig, Verdict, Window};

/// The rate-limit policy.
pub struct RateLimit {
    requests: Option<Window>,
    registers: Option<Window>,
    methods: Vec<String>,
    exempt: Vec<Net>,
}

impl RateLimit {
    /// Counts one event of `kind` from `source` and judges it.
    fn check(&self, window: Window, kind: &str, source: &Source) -> Verdict {
        let ip = source.ip();
        if let Ok(addr) = ip.parse::<IpAddr>()
            && self.exempt.iter().any(|net| net.contains(addr))
        {
            return Verdict::Allow;
        }
        let now = clock::now_ms();
        let count = kv::incr(&window.key(kind, ip, now), 1, window.ttl_ms());
        let verdict = window.verdict(count, now);
        if let Verdict::Reject { first: true, .. } = verdict {
            switchyard_policy::warn!(
                "{ip} exceeded {} {kind} per {} ms; rejecting until the window ends",
                window.limit,
                window.window_ms
            );
        }
        verdict
    }
}

fn busy(retry_after_s: u32) -> Reply {
    Reply::new(503, "Rate Limited").retry_after(retry_after_s)
}

impl Policy for RateLimit {
    fn init(config: Config) -> Result<Self, String> {
        let c: RateConfig = config.parse()?;
        if !(100..=3_600_000).contains(&c.window_ms) {
            return Err(format!(
                "window_ms must be 100..=3600000, got {}",
                c.window_ms
            ));
        }
        if c.requests_per_second == Some(0) || c.registers_per_minute == Some(0) {
            return Err(
                "a limit of 0 would refuse everything; leave the key out for no limit".into(),
            );
        }
        Ok(RateLimit {
            requests: c
                .requests_per_second
                .map(|n| Window::per_second(n, c.window_ms)),
            registers: c.registers_per_minute.map(|n| Window {
                limit: n,
                window_ms: 60_000,
            }),
            methods: c.methods,
            exempt: c
                .exempt
                .iter()
                .map(|s| Net::parse(s))
                .collect::<Result<_, _>>()?,
        })
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        let Some(window) = self.requests else {
            return RequestDecision::proceed();
        };
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method()) {
            return RequestDecision::proceed();
        }
        match self.check(window, "req", req.source()) {
            Verdict::Allow => RequestDecision::proceed(),
            Verdict::Reject { retry_after_s, .. } => {
                metrics::counter("ratelimit_rejected_requests", 1);
                RequestDecision::respond(busy(retry_after_s))
            }
        }
    }

    fn on_register(&self, reg: &Register) -> RegisterDecision {
        let Some(window) = self.registers else {
            return RegisterDecision::allow();
        };
        match self.check(window, "reg", reg.source()) {
            Verdict::Allow => RegisterDecision::allow(),
            Verdict::Reject { retry_after_s, .. } => {
                metrics::counter("ratelimit_rejected_registers", 1);
                RegisterDecision::reject_with(busy(retry_after_s))
            }
        }
    }
}

switchyard_policy::export_policy!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::{RequestAction, Transport, testing};

    fn limiter(json: &str) -> RateLimit {
        RateLimit::init(Config::new(json)).unwrap()
    }

    fn invite_from(ip: &str) -> Request {
        Request::parse("t", "INVITE sip:bob@acme.test SIP/2.0\r\n\r\n")
            .unwrap()
            .with_source(Source::new(Transport::Udp, format!("{ip}:5060")))
    }

    fn retry_after(d: &RequestDecision) -> Option<&str> {
        match &d.action {
            RequestAction::Reply(r) if r.code == 503 => r
                .headers
                .iter()
                .find(|h| h.name == "Retry-After")
                .map(|h| h.value.as_str()),
            _ => None,
        }
    }

    #[test]
    fn limits_each_source_per_window() {
        testing::reset();
        testing::with_host(|h| h.now_ms = 1_000_000);
        let p = limiter(r#"{"requests_per_second": 3}"#);
        for _ in 0..3 {
            assert!(p.on_request(&invite_from("192.0.2.1")).is_proceed());
        }
        let d = p.on_request(&invite_from("192.0.2.1"));
        assert_eq!(retry_after(&d), Some("1"));
        // Another source has its own budget.
        assert!(p.on_request(&invite_from("192.0.2.2")).is_proceed());
        // The next window starts afresh.
        testing::advance_ms(1000);
        assert!(p.on_request(&invite_from("192.0.2.1")).is_proceed());
        assert_eq!(testing::counter("ratelimit_rejected_requests"), 1);
        assert_eq!(testing::logs().len(), 1, "logged once per window");
    }

    #[test]
    fn exempt_methods_and_registers() {
        testing::reset();
        let p = limiter(
            r#"{"requests_per_second": 1, "methods": ["INVITE"], "registers_per_minute": 2, "exempt": ["10.0.0.0/8"]}"#,
        );
        for _ in 0..5 {
            assert!(p.on_request(&invite_from("10.1.1.1")).is_proceed());
        }
        let options = Request::parse("t", "OPTIONS sip:bob@acme.test SIP/2.0\r\n\r\n").unwrap();
        for _ in 0..5 {
            assert!(p.on_request(&options).is_proceed());
        }
        let reg = || {
            Register::parse(
                "t",
                "REGISTER sip:acme.test SIP/2.0\r\nTo: <sip:a@acme.test>\r\n\r\n",
            )
            .unwrap()
        };
        assert_eq!(p.on_register(&reg()), RegisterDecision::allow());
        assert_eq!(p.on_register(&reg()), RegisterDecision::allow());
        assert!(matches!(p.on_register(&reg()), RegisterDecision::Reject(r) if r.code == 503));
    }

    #[test]
    fn refuses_bad_config() {
        assert!(RateLimit::init(Config::new(r#"{"requests_per_second": 0}"#)).is_err());
        assert!(RateLimit::init(Config::new(r#"{"window_ms": 5}"#)).is_err());
        assert!(RateLimit::init(Config::new(r#"{"exempt": ["nope"]}"#)).is_err());
        assert!(
            limiter("{}")
                .on_request(&invite_from("192.0.2.1"))
                .is_proceed()
        );
    }
}
