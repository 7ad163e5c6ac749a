//! Mid-dialog requests from anywhere: BYE, re-INVITE (hold) and REFER sent
//! to node B reach a phone registered through node A, by the Record-Route
//! flow token; a phone without GRUU support behind NAT gets its Contact
//! rewritten by its edge and is reached through it even by a request that
//! ignores the route set; a phone that uses its GRUU as Contact keeps it.

use std::net::SocketAddr;

use switchyard_codec::{HeaderName, SipMessage};
use switchyard_tests::DOMAIN;
use switchyard_tests::cluster::TestCluster;
use switchyard_tests::phone::{Dialog, Phone, contact_param, contact_uri};

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// Alice (at C) calls bob (registered through A) and bob answers 200
/// with `bob_contact`. Returns both sides of the dialog.
async fn call(
    cluster: &TestCluster,
    alice: &mut Phone,
    bob: &mut Phone,
    ruri: &str,
    bob_contact: &str,
) -> (Dialog, Dialog, SipMessage) {
    let (invite, call_id) = alice.invite(ruri, None);
    alice.send(&invite).await;
    let (got, from) = bob.recv_request("INVITE").await;
    assert_eq!(from, cluster.udp(A));
    bob.answer(&got, 200, Some(bob_contact)).await;
    let ok = alice.recv_final(&call_id, "INVITE").await;
    assert_eq!(ok.status(), Some(200));
    let mut caller = Dialog::caller(&ok);
    let ack = caller.request(alice, "ACK", &[]);
    alice.send(&ack).await;
    let (ack, _) = bob.recv_request("ACK").await;
    assert_eq!(ack.call_id().ok(), Some(call_id.as_str()));
    (caller, Dialog::callee(&got, "callee-tag"), got)
}

/// `phone` sends a mid-dialog `method` to `node`; `peer` must receive it
/// from `via` and answers 200. Returns what the peer received.
async fn mid_dialog(
    phone: &mut Phone,
    dialog: &mut Dialog,
    node: SocketAddr,
    method: &str,
    extra: &[&str],
    peer: &mut Phone,
    via: SocketAddr,
) -> SipMessage {
    let text = dialog.request(phone, method, extra);
    phone.send_to(node, &text).await;
    let (got, from) = peer.recv_request(method).await;
    assert_eq!(from, via, "{method} reaches the peer through its edge");
    let contact = peer.contact();
    peer.answer(&got, 200, (method == "INVITE").then_some(contact.as_str()))
        .await;
    let answer = phone.recv_final(&dialog.call_id, method).await;
    assert_eq!(answer.status(), Some(200), "{method} answered");
    got
}

#[tokio::test]
async fn bye_reinvite_and_refer_sent_to_b_reach_the_phone_behind_a() {
    let cluster = TestCluster::start(21070).await;
    let mut bob = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    let contact = bob.contact();
    let ruri = format!("sip:bob@{DOMAIN}");
    let (mut dialog, _, _) = call(&cluster, &mut alice, &mut bob, &ruri, &contact).await;
    let via_a = cluster.udp(A);

    // Hold: a re-INVITE entering the cluster at B.
    let hold = ["Content-Type: application/sdp"];
    let got = mid_dialog(
        &mut alice,
        &mut dialog,
        cluster.udp(B),
        "INVITE",
        &hold,
        &mut bob,
        via_a,
    )
    .await;
    assert_eq!(got.request_uri_str(), Some(contact.as_str()));
    let ack = dialog.request(&mut alice, "ACK", &[]);
    alice.send_to(cluster.udp(B), &ack).await;
    bob.recv_request("ACK").await;

    // Transfer: REFER with its Refer-To intact.
    let refer_to = format!("Refer-To: <sip:carol@{DOMAIN}>");
    let got = mid_dialog(
        &mut alice,
        &mut dialog,
        cluster.udp(B),
        "REFER",
        &[&refer_to],
        &mut bob,
        via_a,
    )
    .await;
    assert_eq!(
        got.headers()
            .find(|h| h.raw_name.eq_ignore_ascii_case("Refer-To"))
            .map(|h| h.value),
        Some(format!("<sip:carol@{DOMAIN}>").as_str())
    );

    mid_dialog(
        &mut alice,
        &mut dialog,
        cluster.udp(B),
        "BYE",
        &[],
        &mut bob,
        via_a,
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_nat_phone_without_gruu_gets_a_cluster_contact_that_routes_from_anywhere() {
    let cluster = TestCluster::start(21071).await;
    // Carol's Contact names a port she does not receive on: behind NAT.
    let mut carol = Phone::udp("carol", "127.0.0.13", cluster.udp(A)).await;
    let private = "sip:carol@127.0.0.13:5999";
    let mut dave = Phone::udp("dave", "127.0.0.14", cluster.udp(B)).await;
    assert_eq!(dave.register("", &[]).await.status(), Some(200));

    let (invite, call_id) = carol.invite(&format!("sip:dave@{DOMAIN}"), Some(private));
    carol.send(&invite).await;
    let (got, from) = dave.recv_request("INVITE").await;
    assert_eq!(from, cluster.udp(B));
    let rewritten = contact_uri(&got);
    assert!(
        rewritten.starts_with("sip:sy.") && rewritten.ends_with(&format!("@{DOMAIN}")),
        "the edge replaced the Contact: {rewritten}"
    );
    assert!(!rewritten.contains("5999"), "opaque: {rewritten}");
    let dave_contact = dave.contact();
    dave.answer(&got, 200, Some(&dave_contact)).await;
    let ok = carol.recv_final(&call_id, "INVITE").await;
    assert_eq!(ok.status(), Some(200));
    let mut caller = Dialog::caller(&ok);
    let ack = caller.request(&mut carol, "ACK", &[]);
    carol.send(&ack).await;
    dave.recv_request("ACK").await;

    // Dave's re-INVITE ignores the route set and goes to C: the Contact
    // alone leads through A, over carol's flow, to her real address, with
    // the Request-URI she gave.
    let mut callee = Dialog::callee(&got, "callee-tag");
    callee.route.clear();
    let got = mid_dialog(
        &mut dave,
        &mut callee,
        cluster.udp(C),
        "INVITE",
        &[],
        &mut carol,
        cluster.udp(A),
    )
    .await;
    assert_eq!(got.request_uri_str(), Some(private));

    // A forged rewritten Contact is 404, never a guess.
    let forged = rewritten.replacen("sip:sy.", "sip:sy.x", 1);
    let (invite, call_id) = dave.invite(&forged, None);
    dave.send_to(cluster.udp(C), &invite).await;
    assert_eq!(
        dave.recv_final(&call_id, "INVITE").await.status(),
        Some(404)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn rewriting_is_per_tenant_and_a_gruu_contact_is_kept() {
    // `always` rewrites even a phone whose Contact is its real address.
    let cluster = TestCluster::start_with(21072, |c| {
        c.cluster.contact_rewrite = switchyard::cluster::ContactRewrite::Always;
    })
    .await;
    let mut erin = Phone::udp("erin", "127.0.0.15", cluster.udp(A)).await;
    let instance = "<urn:uuid:e1e1e1e1-0000-4000-8000-0000000e1e1e>";
    let ok = erin
        .register(
            &format!(";+sip.instance=\"{instance}\""),
            &["Supported: gruu"],
        )
        .await;
    let gruu = contact_param(&ok, "pub-gruu").expect("pub-gruu");
    let mut dave = Phone::udp("dave", "127.0.0.14", cluster.udp(B)).await;
    assert_eq!(dave.register("", &[]).await.status(), Some(200));
    let mut frank = Phone::udp("frank", "127.0.0.16", cluster.udp(A)).await;

    // Frank (no GRUU): rewritten. Erin (GRUU as Contact): kept.
    for (phone, contact, kept) in [
        (&mut frank, None, false),
        (&mut erin, Some(gruu.as_str()), true),
    ] {
        let (invite, call_id) = phone.invite(&format!("sip:dave@{DOMAIN}"), contact);
        phone.send(&invite).await;
        let (got, _) = dave.recv_request("INVITE").await;
        let seen = contact_uri(&got);
        assert_eq!(
            seen == phone.contact() || Some(seen.as_str()) == contact,
            kept,
            "{seen}"
        );
        assert_eq!(seen.starts_with("sip:sy."), !kept, "{seen}");
        dave.answer(&got, 486, None).await;
        assert_eq!(
            phone.recv_final(&call_id, "INVITE").await.status(),
            Some(486)
        );
    }

    // Erin's dialog with her GRUU as Contact: dave's BYE, sent to C with no
    // route set, is resolved from the GRUU and reaches her through A.
    let (invite, call_id) = erin.invite(&format!("sip:dave@{DOMAIN}"), Some(&gruu));
    erin.send(&invite).await;
    let (got, _) = dave.recv_request("INVITE").await;
    assert_eq!(
        got.header(HeaderName::Contact),
        Some(format!("<{gruu}>").as_str())
    );
    let dave_contact = dave.contact();
    dave.answer(&got, 200, Some(&dave_contact)).await;
    let ok = erin.recv_final(&call_id, "INVITE").await;
    let mut caller = Dialog::caller(&ok);
    let ack = caller.request(&mut erin, "ACK", &[]);
    erin.send(&ack).await;
    dave.recv_request("ACK").await;
    let mut callee = Dialog::callee(&got, "callee-tag");
    callee.route.clear();
    let bye = mid_dialog(
        &mut dave,
        &mut callee,
        cluster.udp(C),
        "BYE",
        &[],
        &mut erin,
        cluster.udp(A),
    )
    .await;
    assert_eq!(bye.request_uri_str(), Some(erin.contact().as_str()));
    cluster.shutdown().await;
}

#[tokio::test]
async fn rewriting_off_for_a_tenant_leaves_contacts_alone() {
    let cluster = TestCluster::start_with(21073, |c| {
        c.cluster.contact_rewrite = switchyard::cluster::ContactRewrite::Always;
        c.tenants.domains.insert(DOMAIN.into(), "acme".into());
        c.tenants
            .contact_rewrite
            .insert("acme".into(), switchyard::cluster::ContactRewrite::Off);
    })
    .await;
    let mut dave = Phone::udp("dave", "127.0.0.14", cluster.udp(B)).await;
    assert_eq!(dave.register("", &[]).await.status(), Some(200));
    let mut carol = Phone::udp("carol", "127.0.0.13", cluster.udp(A)).await;
    let private = "sip:carol@127.0.0.13:5999";
    let (invite, call_id) = carol.invite(&format!("sip:dave@{DOMAIN}"), Some(private));
    carol.send(&invite).await;
    let (got, _) = dave.recv_request("INVITE").await;
    assert_eq!(contact_uri(&got), private);
    let dave_contact = dave.contact();
    dave.answer(&got, 200, Some(&dave_contact)).await;
    let ok = carol.recv_final(&call_id, "INVITE").await;
    let mut caller = Dialog::caller(&ok);
    let ack = caller.request(&mut carol, "ACK", &[]);
    carol.send(&ack).await;
    dave.recv_request("ACK").await;

    // Her Contact is unreachable (nothing listens on 5999); only the flow
    // token in A's Record-Route entry gets dave's BYE, entering at B, to her.
    let mut callee = Dialog::callee(&got, "callee-tag");
    let bye = mid_dialog(
        &mut dave,
        &mut callee,
        cluster.udp(B),
        "BYE",
        &[],
        &mut carol,
        cluster.udp(A),
    )
    .await;
    assert_eq!(bye.request_uri_str(), Some(private));
    cluster.shutdown().await;
}

/// Waits (up to 10 s) until every node sees `expected` calls of tenant
/// `acme` across the cluster.
async fn until_cluster_calls(cluster: &TestCluster, expected: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for i in [A, B, C] {
        loop {
            let seen = cluster
                .node(i)
                .calls()
                .counts()
                .get("acme")
                .map_or(0, |c| c.1);
            if seen == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {i} sees {seen} calls, not {expected}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_call_is_counted_cluster_wide_and_ended_by_a_bye_through_another_node() {
    let cluster = TestCluster::start_with(21074, |c| {
        c.tenants.domains.insert(DOMAIN.into(), "acme".into());
        c.dialogs.sync_ms = 20;
    })
    .await;
    let mut bob = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    let contact = bob.contact();
    let ruri = format!("sip:bob@{DOMAIN}");
    let (mut dialog, _, _) = call(&cluster, &mut alice, &mut bob, &ruri, &contact).await;
    // C routed the INVITE and owns the call; A only relayed it to bob's
    // flow; every node counts it once, through the shared counters.
    until_cluster_calls(&cluster, 1).await;
    let local = |i: usize| {
        cluster
            .node(i)
            .calls()
            .counts()
            .get("acme")
            .map_or(0, |c| c.0)
    };
    assert_eq!((local(A), local(B), local(C)), (0, 0, 1));
    // A keeps a transit entry: a draining A waits for the call's BYE.
    assert_eq!(cluster.node(A).calls().live(), 1);

    // alice hangs up into B, which is on no Record-Route of the call.
    let via_a = cluster.udp(A);
    mid_dialog(
        &mut alice,
        &mut dialog,
        cluster.udp(B),
        "BYE",
        &[],
        &mut bob,
        via_a,
    )
    .await;
    until_cluster_calls(&cluster, 0).await;
    assert_eq!(cluster.node(A).calls().live(), 0, "the BYE passed A too");
    // One CDR for the call, written by its owner.
    let cdrs = |i: usize| cluster.node(i).calls().cdrs(None, 10);
    assert!(cdrs(A).is_empty() && cdrs(B).is_empty());
    let owned = cdrs(C);
    assert_eq!(owned.len(), 1, "{owned:?}");
    let record = &owned[0].1;
    assert_eq!(
        record.end_reason,
        Some(switchyard::calls::EndReason::CallerBye)
    );
    assert_eq!((record.status, record.tenant.as_str()), (200, "acme"));
    assert_eq!(record.call_id, dialog.call_id);
    cluster.shutdown().await;
}
