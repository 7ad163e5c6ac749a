//! The policy hook seam: a Rust policy plugged into a running node changes
//! routing at `on_request` and `on_branch_failure` (the WebAssembly engine
//! implements the same trait).

use std::sync::Arc;
use std::time::Duration;

use switchyard::policy::{
    BranchFailure, FailureDecision, Policy, PolicyCtx, Reply, RequestAction, RequestDecision,
    RequestInfo, SinglePolicy, TargetGroup,
};
use switchyard::proxy::fork::Target;
use switchyard::{Config, Node, NodeParts};
use switchyard_tests::sipp::{Sipp, UAC_CALL, UAC_REGISTER, UAS_ANSWER, UAS_BUSY};
use switchyard_tests::{DOMAIN, finish, ip, stop, udp_addr};

/// Busy or unanswered calls go to voicemail; calls to `blocked` are refused.
struct VoicemailOnBusy {
    voicemail: String,
}

impl Policy for VoicemailOnBusy {
    fn on_request(&self, req: &RequestInfo<'_>, _ctx: &mut PolicyCtx) -> RequestDecision {
        if req.request_uri.starts_with("sip:blocked@") {
            return RequestAction::Reply(Reply::new(603, "Decline")).into();
        }
        RequestDecision::CONTINUE
    }

    fn on_branch_failure(&self, f: &BranchFailure<'_>, _ctx: &mut PolicyCtx) -> FailureDecision {
        if f.best_status == 486 && f.targets_tried.len() == 1 {
            FailureDecision::Relay(vec![TargetGroup::parallel(vec![Target::new(
                self.voicemail.clone(),
            )])])
        } else {
            FailureDecision::Fail
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_failure_hook_fails_over_to_voicemail_and_request_hook_replies() {
    let config = Config::for_tests(&["udp:127.0.28.1:0"], &[DOMAIN]);
    let policy = VoicemailOnBusy {
        voicemail: "sip:vm@127.0.28.4:5070".into(),
    };
    let parts = NodeParts {
        store: None,
        policies: Some(Arc::new(SinglePolicy(Arc::new(policy)))),
    };
    let node = Node::start_with(config, parts).await.unwrap();
    let proxy = udp_addr(&node);
    let busy = Sipp::uas(UAS_BUSY).local(ip(28, 2), 5070).spawn();
    let voicemail = Sipp::uas(UAS_ANSWER).local(ip(28, 4), 5070).spawn();
    let reg = Sipp::uac(UAC_REGISTER)
        .remote(proxy)
        .local(ip(28, 3), 0)
        .users(["bob"])
        .set("domain", DOMAIN)
        .set("uas", "127.0.28.2:5070")
        .set("expires", "300");
    finish(reg.spawn()).await.assert_success();
    let call = Sipp::uac(UAC_CALL)
        .remote(proxy)
        .local(ip(28, 3), 0)
        .users(["bob"])
        .set("domain", DOMAIN)
        .timeout(Duration::from_secs(20));
    finish(call.spawn()).await.assert_calls(1, 0);
    stop(busy).await.assert_calls(1, 0);
    stop(voicemail).await.assert_calls(1, 0);

    let blocked = Sipp::uac_expect(603)
        .remote(proxy)
        .local(ip(28, 3), 0)
        .set("domain", DOMAIN)
        .users(["blocked"]);
    finish(blocked.spawn()).await.assert_calls(1, 0);
    node.shutdown().await;
}
