//! The policy hook seam: a Rust policy plugged into a running node changes
//! routing at `on_request` and `on_branch_failure` (the WebAssembly engine
//! implements the same trait), and a slow hook never holds its transaction.

use std::sync::Arc;
use std::time::Duration;

use switchyard::policy::{
    BranchFailure, FailureDecision, Policy, PolicyCtx, Reply, RequestAction, RequestDecision,
    RequestInfo, ResponseDecision, ResponseInfo, SinglePolicy, TargetGroup,
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
        counters: None,
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

/// A policy whose `on_response` for a 180 waits until the test opens the
/// gate (5 s at most), and says when it has started waiting.
struct GatedRinging {
    entered: std::sync::mpsc::SyncSender<()>,
    gate: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Policy for GatedRinging {
    fn on_response(&self, resp: &ResponseInfo<'_>, _ctx: &mut PolicyCtx) -> ResponseDecision {
        if resp.status == 180 {
            let _ = self.entered.send(());
            let _ = self
                .gate
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(5));
        }
        ResponseDecision::PASS
    }
}

/// No hook runs under the transaction's lock: while `on_response` is
/// still deciding about the 180, the caller's retransmitted INVITE is
/// absorbed and answered with the 100 Trying again; the 180 follows when
/// the hook returns. With the hook under the lock, the retransmission
/// would wait the hook's 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_response_hook_does_not_hold_the_transaction() {
    use switchyard_tests::ua::{UdpUa, ack, invite, register, reply};

    let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
    let (gate_tx, gate_rx) = std::sync::mpsc::channel();
    let policy = GatedRinging {
        entered: entered_tx,
        gate: std::sync::Mutex::new(gate_rx),
    };
    let config = Config::for_tests(&["udp:127.0.76.1:0"], &[DOMAIN]);
    let parts = NodeParts {
        store: None,
        policies: Some(Arc::new(SinglePolicy(Arc::new(policy)))),
        counters: None,
    };
    let node = Node::start_with(config, parts).await.unwrap();
    let proxy = udp_addr(&node);
    let bob = UdpUa::bind("127.0.76.2").await;
    let alice = UdpUa::bind("127.0.76.3").await;
    bob.send(proxy, &register(DOMAIN, "bob", bob.addr, "gated"))
        .await;
    let (ok, _) = bob.recv("200 to REGISTER").await;
    assert_eq!(ok.status(), Some(200));

    let inv = invite(
        &format!("sip:bob@{DOMAIN}"),
        &format!("alice@{DOMAIN}"),
        alice.addr,
        "gated",
    );
    alice.send(proxy, &inv).await;
    let (trying, _) = alice.recv("100 Trying").await;
    assert_eq!(trying.status(), Some(100));
    let at_bob = bob.recv_request("INVITE", "the INVITE at bob").await;
    bob.send(proxy, &reply(&at_bob, 180, "Ringing", "b1", bob.addr))
        .await;
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the hook runs for the 180");

    // The hook is blocked (for up to 5 s); the transaction is not: the
    // retransmission is answered well within that.
    // (Wall-clock time: a worker stuck on the transaction's lock can
    // delay the runtime's own timers too.)
    let sent = std::time::Instant::now();
    alice.send(proxy, &inv).await;
    let (again, _) = alice.recv("the answer to the retransmission").await;
    let waited = sent.elapsed();
    assert_eq!(again.status(), Some(100), "{again:?}");
    assert!(
        waited < Duration::from_secs(2),
        "the retransmission waited {waited:?} for the hook"
    );

    gate_tx.send(()).unwrap();
    let (ringing, _) = alice.recv("180 after the hook").await;
    assert_eq!(ringing.status(), Some(180), "{ringing:?}");
    bob.send(proxy, &reply(&at_bob, 486, "Busy Here", "b1", bob.addr))
        .await;
    let (busy, _) = alice.recv_final("486").await;
    assert_eq!(busy.status(), Some(486));
    alice.send(proxy, &ack(&inv, &busy)).await;
    node.shutdown().await;
}
