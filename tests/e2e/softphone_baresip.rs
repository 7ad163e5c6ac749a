//! A real softphone through a node: two Debian baresip 1.0.0 instances,
//! alice and bob, register to a node whose SIP domain is its own IP (the
//! usual softphone setup: the proxy's address as domain and outbound
//! proxy), alice calls bob, bob auto-answers, alice hangs up and both
//! unregister, over UDP and TCP, each with and without SIP Outbound
//! (RFC 5626). The verdict comes from the phones themselves (`ctrl_tcp`
//! events) and from the node's location store; see
//! `switchyard_tests::baresip` for how baresip is run.

use std::time::Duration;

use switchyard::NodeHandle;
use switchyard::net::Transport;
use switchyard_tests::baresip::{Account, Baresip, param};
use switchyard_tests::softphone::{assert_challenged, bindings, scenario};

/// Waits until `user@ip` has no binding: baresip 1.0.0 reports no event
/// when its unregistration is answered, so the store is the witness.
async fn wait_unbound(node: &NodeHandle, phone: &Baresip, user: &str, ip: &str) {
    let deadline = tokio::time::Instant::now() + switchyard_tests::baresip::WAIT;
    loop {
        let left = bindings(node, user, ip).await;
        if left.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            phone.fail(&format!(
                "{user}@{ip} still bound after unregistering: {left:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the binding a registered phone left in the store: one contact
/// on the phone's own address, with `+sip.instance` and `reg-id` exactly
/// when the phone uses SIP Outbound.
async fn assert_bound(node: &NodeHandle, phone: &Baresip, account: &Account, ip: &str) {
    let found = bindings(node, &account.user, ip).await;
    let [binding] = found.as_slice() else {
        phone.fail(&format!(
            "expected one binding for {}: {found:?}",
            account.aor()
        ));
    };
    phone.ensure(binding.contact.contains(&format!("@{ip}:")), || {
        format!("the contact is not the phone's own address: {binding:?}")
    });
    let outbound = binding.instance.is_some() && binding.reg_id == Some(1);
    phone.ensure(outbound == account.outbound, || {
        format!("+sip.instance and reg-id=1 only with SIP Outbound: {binding:?}")
    });
}

/// A call event's peer URI without its parameters: baresip adds the
/// account's `;transport=` to the URI it dials.
fn peer(event: &serde_json::Value) -> String {
    let uri = event["peeruri"].as_str().unwrap_or_default();
    uri.split(';').next().unwrap_or_default().to_owned()
}

/// The whole scenario on a node at `ip`, phones on the same address.
async fn call_flow(ip: &str, transport: Transport, outbound: bool) {
    call_flow_as(ip, transport, outbound, false).await;
}

/// The scenario; with `auth`, the node challenges every REGISTER and
/// INVITE and the phones answer with their passwords.
async fn call_flow_as(ip: &str, transport: Transport, outbound: bool, auth: bool) {
    // The default, MD5 alone: libre 1.1 refuses the whole set of
    // challenges when any one of them has an algorithm it lacks.
    let auth = auth.then_some(&[][..]);
    let (node, alice_acc, bob_acc) = scenario(ip, transport, outbound, auth).await;

    let mut alice = Baresip::start("alice", ip, outbound).await;
    let mut bob = Baresip::start("bob", ip, outbound).await;
    for (phone, acc) in [(&mut alice, &alice_acc), (&mut bob, &bob_acc)] {
        let ok = phone.register(acc).await;
        phone.ensure(ok.starts_with("200"), || format!("REGISTER_OK with {ok}"));
        assert_bound(&node, phone, acc, ip).await;
    }

    // Alice calls bob; bob answers by himself (answermode=auto). Each side
    // is established only once it has the other's 200 OK / ACK.
    let bob_uri = bob_acc.aor();
    alice.command("dial", &bob_uri).await;
    let set_up = ["CALL_CLOSED"];
    let incoming = bob.expect_event("CALL_ESTABLISHED", &set_up).await;
    bob.ensure(
        incoming["direction"] == "incoming" && peer(&incoming) == alice_acc.aor(),
        || format!("not alice's call: {incoming}"),
    );
    let outgoing = alice.expect_event("CALL_ESTABLISHED", &set_up).await;
    alice.ensure(
        outgoing["direction"] == "outgoing" && peer(&outgoing) == bob_uri,
        || format!("not the call to bob: {outgoing}"),
    );

    // Alice hangs up: her BYE must reach bob, who closes on it (without
    // it bob's call would stay up, or end later for another reason).
    alice.command("hangup", "").await;
    alice.expect_event("CALL_CLOSED", &[]).await;
    let bye = bob.expect_event("CALL_CLOSED", &[]).await;
    bob.ensure(param(&bye) == "Connection reset by peer", || {
        format!("closed for another reason than alice's BYE: {bye}")
    });
    // The node tracked the call and wrote its CDR: answered, alice's BYE.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let cdr = loop {
        if let Some((_, cdr)) = node.calls().cdrs(None, 10).pop() {
            break cdr;
        }
        assert!(std::time::Instant::now() < deadline, "no CDR for the call");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        cdr.end_reason,
        Some(switchyard::calls::EndReason::CallerBye),
        "{cdr:?}"
    );
    assert_eq!(cdr.status, 200, "{cdr:?}");
    assert!(
        cdr.answer_ms.is_some() && cdr.caller.starts_with("alice@"),
        "{cdr:?}"
    );
    assert!(cdr.callee.starts_with("bob@"), "{cdr:?}");

    for (phone, acc) in [(&mut alice, &alice_acc), (&mut bob, &bob_acc)] {
        phone.unregister(acc).await;
        wait_unbound(&node, phone, &acc.user, ip).await;
    }
    drop((alice, bob));
    if auth.is_some() {
        assert_challenged(&node);
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call() {
    call_flow("127.0.60.1", Transport::Udp, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call() {
    call_flow("127.0.60.2", Transport::Tcp, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call_with_outbound() {
    call_flow("127.0.60.3", Transport::Udp, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call_with_outbound() {
    call_flow("127.0.60.4", Transport::Tcp, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call_with_digest_auth() {
    call_flow_as("127.0.60.5", Transport::Udp, false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call_with_digest_auth() {
    call_flow_as("127.0.60.6", Transport::Tcp, false, true).await;
}

#[tokio::test]
async fn tls_call() {
    call_flow("127.0.60.7", Transport::Tls, false).await;
}

#[tokio::test]
async fn tls_call_with_outbound_and_digest_auth() {
    call_flow_as("127.0.60.8", Transport::Tls, true, true).await;
}
