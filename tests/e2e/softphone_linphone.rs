//! A real softphone through a node: two Debian linphonec 5.1 instances,
//! alice and bob, register to a node whose SIP domain is its own IP (the
//! usual softphone setup), alice calls bob, bob auto-answers, alice hangs
//! up and both unregister, over UDP and TCP, each with and without SIP
//! Outbound (`reg-id`, RFC 5626). linphonec always uses its pub-GRUU as
//! its dialog Contact, so the ACK and BYE are addressed to a GRUU on the
//! node's own domain: the case a proxy must resolve through the GRUU, not
//! the AOR. The verdict comes from the phones themselves (their console
//! and the SIP messages their log shows) and from the node's location
//! store; see `switchyard_tests::linphone` for how linphonec is run.

use switchyard::NodeHandle;
use switchyard::net::Transport;
use switchyard_tests::linphone::{Account, Linphone};
use switchyard_tests::softphone::{assert_challenged, bindings, scenario};

/// Checks the binding a registered phone left in the store: one contact
/// on the phone's own address and transport, with the `+sip.instance`
/// linphone always sends, and `reg-id` exactly when it uses Outbound.
async fn assert_bound(node: &NodeHandle, phone: &Linphone, account: &Account, ip: &str) {
    let found = bindings(node, &account.user, ip).await;
    let [binding] = found.as_slice() else {
        phone.fail(&format!(
            "expected one binding for {}: {found:?}",
            account.aor()
        ));
    };
    let tp = format!(
        ";transport={}",
        account.transport.as_str().to_ascii_lowercase()
    );
    // Its own address, or (RFC 3581) the one our responses' Via told it
    // we saw: linphone rewrites its Contact to `received`/`rport`.
    let seen = format!("@{}", binding.source.remote);
    let at_own = binding.contact.contains(&format!("@{ip}:"));
    let at_seen = binding.contact.contains(&seen);
    let own = (at_own || at_seen) && binding.contact.contains(&tp);
    let outbound = binding.reg_id == account.outbound.then_some(1);
    if !own || binding.instance.is_none() || !outbound {
        phone.fail(&format!("unexpected binding: {binding:?}"));
    }
}

/// The whole scenario on a node at `ip`, phones on the same address.
async fn call_flow(ip: &str, transport: Transport, outbound: bool) {
    call_flow_as(ip, transport, outbound, false).await;
}

/// The scenario; with `auth`, the node challenges every REGISTER and
/// INVITE and the phones answer with their passwords.
async fn call_flow_as(ip: &str, transport: Transport, outbound: bool, auth: bool) {
    // linphone answers the topmost challenge: SHA-256 (RFC 8760).
    let auth = auth.then_some(&["SHA-256", "MD5"][..]);
    let (node, alice_acc, bob_acc) = scenario(ip, transport, outbound, auth).await;
    let (alice_uri, bob_uri) = (alice_acc.aor(), bob_acc.aor());

    let mut alice = Linphone::start(ip, &alice_acc, false).await;
    let mut bob = Linphone::start(ip, &bob_acc, true).await;
    for (phone, acc) in [(&mut alice, &alice_acc), (&mut bob, &bob_acc)] {
        phone.register().await;
        assert_bound(&node, phone, acc, ip).await;
    }

    // Alice calls bob's AOR; bob answers by himself (-a). Each side is
    // connected once it sent or got the 200 OK; the call is only set up
    // when bob also got the ACK, which goes to his GRUU (without it he
    // retransmits his 200 OK and hangs up after 32 s).
    let a = alice.call(&bob_uri).await;
    let b = bob.incoming(&alice_uri).await;
    alice.connected(a, &bob_uri).await;
    bob.connected(b, &alice_uri).await;
    bob.wire("<<<", "ACK ", "ACK").await;
    for (phone, id) in [(&mut alice, a), (&mut bob, b)] {
        let state = phone.call_state(id).await;
        if state != "StreamsRunning" {
            phone.fail(&format!("call {id} is {state}, not StreamsRunning"));
        }
    }

    // Alice hangs up: her BYE must reach bob, who ends the call on it
    // (reason "No error", not a timeout), and its 200 OK must reach her.
    alice.command("terminate");
    bob.wire("<<<", "BYE ", "BYE").await;
    let reason = bob.ended(b, &alice_uri).await;
    if reason != "No error" {
        bob.fail(&format!("the call ended with {reason:?}, not on the BYE"));
    }
    alice.wire("<<<", "SIP/2.0 200", "BYE").await;
    alice.ended(a, &bob_uri).await;

    for (phone, acc) in [(&mut alice, &alice_acc), (&mut bob, &bob_acc)] {
        phone.unregister().await;
        let left = bindings(&node, &acc.user, ip).await;
        if !left.is_empty() {
            phone.fail(&format!("still bound after unregistering: {left:?}"));
        }
    }
    if auth.is_some() {
        assert_challenged(&node);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn linphonec_calls_over_udp() {
    call_flow("127.0.61.1", Transport::Udp, false).await;
}

#[tokio::test]
async fn linphonec_calls_over_tcp() {
    call_flow("127.0.61.2", Transport::Tcp, false).await;
}

#[tokio::test]
async fn linphonec_calls_over_udp_with_outbound() {
    call_flow("127.0.61.3", Transport::Udp, true).await;
}

#[tokio::test]
async fn linphonec_calls_over_tcp_with_outbound() {
    call_flow("127.0.61.4", Transport::Tcp, true).await;
}

#[tokio::test]
async fn linphonec_calls_over_udp_with_digest_auth() {
    call_flow_as("127.0.61.5", Transport::Udp, false, true).await;
}

#[tokio::test]
async fn linphonec_calls_over_tcp_with_digest_auth() {
    call_flow_as("127.0.61.6", Transport::Tcp, false, true).await;
}

#[tokio::test]
async fn linphonec_calls_over_tls() {
    call_flow("127.0.61.7", Transport::Tls, false).await;
}

#[tokio::test]
async fn linphonec_calls_over_tls_with_outbound_and_digest_auth() {
    call_flow_as("127.0.61.8", Transport::Tls, true, true).await;
}
