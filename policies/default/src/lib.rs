//! The default policy: exactly what the proxy does without one. Every hook
//! keeps the SDK's default (proceed, allow, pass, fail, nothing), which is
//! the host's built-in behaviour: registrar plus location routing.
//!
//! The host embeds this component so that a tenant configured with
//! `module = "builtin:default"` needs no file; it is also the smallest
//! useful measure of per-hook overhead.

use switchyard_policy::{Config, Policy};

/// A policy that overrides nothing.
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(DefaultPolicy)
    }
}

switchyard_policy::export_policy!(DefaultPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::prelude::*;

    #[test]
    fn every_hook_keeps_the_default() {
        let p = DefaultPolicy::init(Config::new("{}")).unwrap();
        let req = Request::parse(
            "public",
            "INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:bob@example.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .unwrap();
        assert_eq!(p.on_request(&req), RequestDecision::proceed());
        let reg = Register::parse(
            "public",
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@example.test>;tag=1\r\nTo: <sip:a@example.test>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:a@192.0.2.1>\r\n\r\n",
        )
        .unwrap();
        assert_eq!(p.on_register(&reg), RegisterDecision::allow());
        let resp = Response::parse("public", "SIP/2.0 180 Ringing\r\n\r\n", Vec::new()).unwrap();
        assert_eq!(p.on_response(&resp), ResponseDecision::pass());
        let f = BranchFailure::new(
            "public",
            Vec::new(),
            408,
            Cause::Timeout,
            Vec::new(),
            Vec::new(),
        );
        assert_eq!(p.on_branch_failure(&f), FailureDecision::fail());
    }
}
