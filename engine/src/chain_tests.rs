//! The chain's rules with stand-in links.

use std::sync::Arc;

use super::*;
use crate::{HeaderEdit, Origin, Reply};
use switchyard_proto::net::{Source, Transport};

/// A link that counts its calls in its own context, rewrites or answers
/// as told, and records the Request-URI it saw.
#[derive(Default)]
struct Link {
    rewrite: Option<&'static str>,
    reply_if_uri: Option<&'static str>,
    limit: Option<RegisterLimits>,
    reject: bool,
    drop: bool,
    relay_on_failure: bool,
    seen: parking_lot::Mutex<Vec<String>>,
}

fn count(ctx: &mut PolicyCtx) -> u8 {
    let n = ctx.data.first().copied().unwrap_or(0) + 1;
    ctx.data = vec![n];
    n
}

impl Policy for Link {
    fn on_register(&self, _reg: &RegisterInfo<'_>, ctx: &mut PolicyCtx) -> RegisterDecision {
        count(ctx);
        match (self.reject, self.limit) {
            (true, _) => RegisterDecision::Reject(Reply::new(403, "")),
            (false, Some(l)) => RegisterDecision::Limit(l),
            _ => RegisterDecision::Allow,
        }
    }

    fn on_request(&self, req: &RequestInfo<'_>, ctx: &mut PolicyCtx) -> RequestDecision {
        count(ctx);
        self.seen.lock().push(req.request_uri.to_owned());
        let headers = vec![HeaderEdit::Add {
            name: "X-Link".into(),
            value: self.seen.lock().len().to_string(),
        }];
        if self.reply_if_uri.is_some_and(|u| req.request_uri == u) {
            return RequestDecision {
                headers,
                ..RequestAction::Reply(Reply::new(486, "")).into()
            };
        }
        RequestDecision {
            action: RequestAction::Continue,
            headers,
            request_uri: self.rewrite.map(str::to_owned),
        }
    }

    fn on_response(&self, _resp: &ResponseInfo<'_>, ctx: &mut PolicyCtx) -> ResponseDecision {
        let calls = count(ctx);
        // The counter proves the context survived from on-request.
        assert_eq!(calls, 2, "each link keeps its own context");
        if self.drop {
            ResponseDecision::DROP
        } else {
            ResponseDecision::PASS
        }
    }

    fn on_branch_failure(&self, _f: &BranchFailure<'_>, _ctx: &mut PolicyCtx) -> FailureDecision {
        if self.relay_on_failure {
            FailureDecision::Reply(Reply::new(480, "From the chain"))
        } else {
            FailureDecision::Fail
        }
    }
}

fn request(uri: &str, origin: &Origin) -> RequestInfo<'static> {
    let source = Source {
        transport: Transport::Udp,
        remote: "127.0.0.2:5060".parse().unwrap(),
        local: "127.0.0.1:5060".parse().unwrap(),
    };
    let uri: &'static str = Box::leak(uri.to_owned().into_boxed_str());
    let origin: &'static Origin = Box::leak(Box::new(origin.clone()));
    RequestInfo {
        tenant: "acme",
        method: "INVITE",
        origin,
        request_uri: uri,
        message: b"",
        source,
        bindings: &[],
    }
}

#[test]
fn a_continue_hands_the_rewritten_uri_on_and_a_decision_stops_the_chain() {
    let first = Arc::new(Link {
        rewrite: Some("sip:1001@acme.test"),
        ..Link::default()
    });
    let second = Arc::new(Link {
        reply_if_uri: Some("sip:1001@acme.test"),
        ..Link::default()
    });
    let third = Arc::new(Link::default());
    let chain = Chain::new(vec![first.clone(), second.clone(), third.clone()]);
    let mut ctx = PolicyCtx::default();
    let decision = chain.on_request(&request("sip:101@acme.test", &Origin::Anonymous), &mut ctx);
    assert_eq!(decision.action, RequestAction::Reply(Reply::new(486, "")));
    assert_eq!(decision.request_uri.as_deref(), Some("sip:1001@acme.test"));
    assert_eq!(
        decision.headers.len(),
        2,
        "the edits of both links that ran"
    );
    assert_eq!(*second.seen.lock(), ["sip:1001@acme.test"]);
    assert!(third.seen.lock().is_empty(), "a decision stops the chain");

    // Every link that ran sees its own context again at the next hook.
    let resp = ResponseInfo {
        tenant: "acme",
        status: 200,
        message: b"",
    };
    let dropping = Chain::new(vec![
        Arc::new(Link::default()) as Arc<dyn Policy>,
        Arc::new(Link {
            drop: true,
            ..Link::default()
        }),
    ]);
    let mut ctx = PolicyCtx::default();
    let passing = dropping.on_request(&request("sip:101@acme.test", &Origin::Anonymous), &mut ctx);
    assert_eq!(passing.action, RequestAction::Continue);
    assert_eq!(
        dropping.on_response(&resp, &mut ctx).action,
        ResponseAction::Drop
    );
}

#[test]
fn register_limits_combine_and_a_reject_wins() {
    let reg = RegisterInfo {
        tenant: "acme",
        origin: &Origin::Anonymous,
        aor: "alice@acme.test",
        contacts: vec!["sip:alice@127.0.0.2"],
        expires: Some(3600),
        message: b"",
        source: request("sip:x", &Origin::Anonymous).source,
    };
    let limit = |c, e| Link {
        limit: Some(RegisterLimits {
            max_contacts: c,
            max_expires: e,
        }),
        ..Link::default()
    };
    let chain = Chain::new(vec![
        Arc::new(limit(Some(5), None)) as Arc<dyn Policy>,
        Arc::new(limit(Some(2), Some(600))),
    ]);
    assert_eq!(
        chain.on_register(&reg, &mut PolicyCtx::default()),
        RegisterDecision::Limit(RegisterLimits {
            max_contacts: Some(2),
            max_expires: Some(600),
        })
    );
    let chain = Chain::new(vec![
        Arc::new(limit(Some(5), None)) as Arc<dyn Policy>,
        Arc::new(Link {
            reject: true,
            ..Link::default()
        }),
    ]);
    assert!(matches!(
        chain.on_register(&reg, &mut PolicyCtx::default()),
        RegisterDecision::Reject(_)
    ));
}

#[test]
fn the_first_link_with_an_answer_to_a_failure_gives_it() {
    let failure = BranchFailure {
        tenant: "acme",
        request: b"",
        best_status: 408,
        cause: crate::FailureCause::Timeout,
        targets_tried: &[],
    };
    let chain = Chain::new(vec![
        Arc::new(Link::default()) as Arc<dyn Policy>,
        Arc::new(Link {
            relay_on_failure: true,
            ..Link::default()
        }),
    ]);
    assert_eq!(
        chain.on_branch_failure(&failure, &mut PolicyCtx::default()),
        FailureDecision::Reply(Reply::new(480, "From the chain"))
    );
    assert!(!chain.is_default());
    assert!(Chain::new(vec![Arc::new(crate::DefaultPolicy) as Arc<dyn Policy>]).is_default());
}

#[test]
fn contexts_split_and_join() {
    let segments = vec![vec![1, 2], Vec::new(), vec![3]];
    let joined = join(&segments);
    assert_eq!(split(&joined, 3), segments);
    assert!(join(&[Vec::new(), Vec::new()]).is_empty());
    assert_eq!(split(&[], 2), [Vec::<u8>::new(), Vec::new()]);
}
