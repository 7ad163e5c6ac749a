//! Wire-level behaviour of a single node: what exactly the proxy puts on the
//! wire for a register-and-call flow, over UDP and TCP.

use switchyard_codec::{HeaderName, Method};
use switchyard_tests::ua::{TcpUa, UdpUa, msg};
use switchyard_tests::{DOMAIN, start_node, tcp_addr, udp_addr};

const REGISTER: &str = "REGISTER sip:{domain} SIP/2.0
Via: SIP/2.0/{tp} {me};branch=z9hG4bK-reg-{tag};rport
Max-Forwards: 70
From: <sip:{user}@{domain}>;tag=r{tag}
To: <sip:{user}@{domain}>
Call-ID: reg-{tag}@test
CSeq: 1 REGISTER
Contact: <sip:{user}@{me}{ctp}>
Expires: 300
Content-Length: 0

";

const INVITE: &str = "INVITE sip:{callee}@{domain} SIP/2.0
Via: SIP/2.0/UDP {me};branch=z9hG4bK-inv-{tag};rport
Max-Forwards: 70
From: <sip:alice@{domain}>;tag=a{tag}
To: <sip:{callee}@{domain}>
Call-ID: call-{tag}@test
CSeq: 1 INVITE
Contact: <sip:alice@{me}>
Content-Type: application/sdp
Content-Length: {len}

v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 4000 RTP/AVP 0
";

/// Builds the response a UAS sends to `req` (Via/From/To/Call-ID/CSeq copied).
fn answer(req: &switchyard_codec::SipMessage, code: u16, reason: &str, contact: &str) -> String {
    let mut b = switchyard_codec::response_to(req, code, reason).to_tag("uas1");
    if code >= 180 {
        b = b.header("Contact", &format!("<{contact}>"));
        for rr in req.header_values(HeaderName::RecordRoute) {
            b = b.header("Record-Route", rr);
        }
    }
    String::from_utf8(b.build().to_vec()).unwrap()
}

#[tokio::test]
async fn udp_register_then_call_through_the_proxy() {
    let node = start_node("127.0.1.1").await;
    let proxy = udp_addr(&node);
    let bob = UdpUa::bind("127.0.1.2").await;
    let alice = UdpUa::bind("127.0.1.3").await;
    let bob_addr = bob.addr.to_string();
    let alice_addr = alice.addr.to_string();

    // REGISTER: 200 lists the binding with its expiry.
    bob.send(
        proxy,
        &msg(
            REGISTER,
            &[
                ("domain", DOMAIN),
                ("tp", "UDP"),
                ("me", &bob_addr),
                ("tag", "1"),
                ("user", "bob"),
                ("ctp", ""),
            ],
        ),
    )
    .await;
    let (ok, _) = bob.recv("200 to REGISTER").await;
    assert_eq!(ok.status(), Some(200));
    let contact = ok.header(HeaderName::Contact).expect("Contact in 200");
    assert!(
        contact.contains(&format!("sip:bob@{bob_addr}")),
        "{contact}"
    );
    assert!(contact.contains("expires=300"), "{contact}");
    assert!(ok.to().unwrap().tag().is_some(), "registrar adds a To tag");

    // INVITE from alice: 100 Trying at once, and bob receives the forwarded copy.
    alice
        .send(
            proxy,
            &msg(
                INVITE,
                &[
                    ("callee", "bob"),
                    ("domain", DOMAIN),
                    ("me", &alice_addr),
                    ("tag", "1"),
                ],
            ),
        )
        .await;
    let (trying, _) = alice.recv("100 Trying").await;
    assert_eq!(trying.status(), Some(100));
    let (inv, from) = bob.recv("forwarded INVITE").await;
    assert_eq!(
        from, proxy,
        "the INVITE comes from the proxy's listening socket"
    );
    assert_eq!(inv.method(), Some(&Method::Invite));
    assert_eq!(
        inv.request_uri_str(),
        Some(format!("sip:bob@{bob_addr}").as_str())
    );
    assert_eq!(inv.max_forwards().unwrap(), Some(69));
    let vias: Vec<_> = inv.vias().map(|v| v.unwrap().raw.to_string()).collect();
    assert_eq!(vias.len(), 2, "{vias:?}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {proxy};branch=z9hG4bK")),
        "{vias:?}"
    );
    assert!(
        vias[1].contains(&format!("rport={}", alice.addr.port())),
        "RFC 3581 rport filled: {vias:?}"
    );
    let rr = inv.header(HeaderName::RecordRoute).expect("Record-Route");
    assert_eq!(rr, format!("<sip:{proxy};lr>"));
    assert!(inv.body().starts_with(b"v=0"), "body untouched");

    // Ringing and answer travel back with the proxy's Via removed.
    bob.send(
        proxy,
        &answer(&inv, 180, "Ringing", &format!("sip:bob@{bob_addr}")),
    )
    .await;
    let (ringing, _) = alice.recv("180").await;
    assert_eq!(ringing.status(), Some(180));
    assert_eq!(ringing.vias().count(), 1);
    bob.send(
        proxy,
        &answer(&inv, 200, "OK", &format!("sip:bob@{bob_addr}")),
    )
    .await;
    let (ok, _) = alice.recv("200").await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(HeaderName::RecordRoute), Some(rr));
    // The UAS retransmits its 200 (it saw no ACK yet): §16.7 step 5 forwards
    // every 2xx, so the caller gets the copy too.
    bob.send(
        proxy,
        &answer(&inv, 200, "OK", &format!("sip:bob@{bob_addr}")),
    )
    .await;
    let (again, _) = alice.recv("retransmitted 200").await;
    assert_eq!(again.status(), Some(200));

    // ACK and BYE follow the Record-Route through the proxy (loose routing).
    let to = ok.header(HeaderName::To).unwrap();
    let ack = format!(
        "ACK sip:bob@{bob_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {alice_addr};branch=z9hG4bK-ack-1;rport\r\nRoute: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a1\r\nTo: {to}\r\nCall-ID: call-1@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    alice.send(proxy, &ack).await;
    let (got_ack, _) = bob.recv("ACK for 2xx").await;
    assert_eq!(got_ack.method(), Some(&Method::Ack));
    assert!(
        got_ack.header(HeaderName::Route).is_none(),
        "proxy removed its own Route"
    );

    let bye = format!(
        "BYE sip:alice@{alice_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {bob_addr};branch=z9hG4bK-bye-1\r\nRoute: {rr}\r\nMax-Forwards: 70\r\nFrom: {to}\r\nTo: <sip:alice@{DOMAIN}>;tag=a1\r\nCall-ID: call-1@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    bob.send(proxy, &bye).await;
    let (got_bye, _) = alice.recv("BYE").await;
    assert_eq!(got_bye.method(), Some(&Method::Bye));
    alice.send(proxy, &answer(&got_bye, 200, "OK", "")).await;
    let (bye_ok, _) = bob.recv("200 to BYE").await;
    assert_eq!(bye_ok.status(), Some(200));
    assert_eq!(bye_ok.cseq().unwrap().method, Method::Bye);
    node.shutdown().await;
}

#[tokio::test]
async fn tcp_register_and_invite_reuse_the_connection() {
    let node = start_node("127.0.1.11").await;
    let proxy = tcp_addr(&node);
    let mut bob = TcpUa::connect("127.0.1.12", proxy).await;
    let bob_addr = bob.addr.to_string();
    bob.send(&msg(
        REGISTER,
        &[
            ("domain", DOMAIN),
            ("tp", "TCP"),
            ("me", &bob_addr),
            ("tag", "2"),
            ("user", "bob"),
            ("ctp", ";transport=tcp"),
        ],
    ))
    .await;
    let ok = bob.recv("200 to REGISTER").await;
    assert_eq!(ok.status(), Some(200));

    // A UDP caller reaches the TCP-registered callee over bob's own connection.
    let alice = UdpUa::bind("127.0.1.13").await;
    let alice_addr = alice.addr.to_string();
    alice
        .send(
            udp_addr(&node),
            &msg(
                INVITE,
                &[
                    ("callee", "bob"),
                    ("domain", DOMAIN),
                    ("me", &alice_addr),
                    ("tag", "2"),
                ],
            ),
        )
        .await;
    let inv = bob.recv("INVITE over the registered TCP connection").await;
    assert_eq!(inv.method(), Some(&Method::Invite));
    let top = inv.top_via().unwrap();
    assert_eq!(top.transport, "TCP");
    // Double Record-Route: the UDP side and the TCP side of the proxy.
    let rr: Vec<_> = inv.header_values(HeaderName::RecordRoute).collect();
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].contains("transport=tcp"), "{rr:?}");
    bob.send(&answer(&inv, 486, "Busy Here", "")).await;
    let (busy, _) = alice.recv_final("486").await;
    assert_eq!(busy.status(), Some(486));
    // The proxy ACKs the 486 hop by hop (RFC 3261 §17.1.1.3).
    let ack = bob.recv("ACK for 486").await;
    assert_eq!(ack.method(), Some(&Method::Ack));
    node.shutdown().await;
}

#[tokio::test]
async fn ipv6_listener_proxies_between_ipv6_endpoints() {
    let node = switchyard_tests::start_node_with("127.0.1.21", |c| {
        c.listen = vec!["udp:[::1]:0".parse().unwrap()];
        c.egress.allow.push("::1/128".parse().unwrap());
    })
    .await;
    let proxy = udp_addr(&node);
    assert!(proxy.is_ipv6());
    let bob = UdpUa::bind("::1").await;
    let alice = UdpUa::bind("::1").await;
    let (bob_addr, alice_addr) = (bob.addr.to_string(), alice.addr.to_string());
    bob.send(
        proxy,
        &msg(
            REGISTER,
            &[
                ("domain", DOMAIN),
                ("tp", "UDP"),
                ("me", &bob_addr),
                ("tag", "6"),
                ("user", "bob"),
                ("ctp", ""),
            ],
        ),
    )
    .await;
    let (ok, _) = bob.recv("200 to REGISTER over IPv6").await;
    assert_eq!(ok.status(), Some(200));
    alice
        .send(
            proxy,
            &msg(
                INVITE,
                &[
                    ("callee", "bob"),
                    ("domain", DOMAIN),
                    ("me", &alice_addr),
                    ("tag", "6"),
                ],
            ),
        )
        .await;
    let (inv, _) = bob.recv("INVITE over IPv6").await;
    assert_eq!(
        inv.request_uri_str(),
        Some(format!("sip:bob@{bob_addr}").as_str())
    );
    assert_eq!(
        inv.header(HeaderName::RecordRoute),
        Some(format!("<sip:{proxy};lr>").as_str())
    );
    node.shutdown().await;
}

/// RFC 5393: a request with Max-Breadth 2 for an AOR with three phones
/// forks to two at a time, each copy carrying Max-Breadth 1; the third is
/// tried when both have failed. Max-Breadth 0 is 440.
#[tokio::test]
async fn max_breadth_limits_parallel_branches() {
    use std::time::Duration;
    use switchyard_tests::ua::{ack, invite, register, reply};

    let node = start_node("127.0.74.1").await;
    let proxy = udp_addr(&node);
    let mut phones = Vec::new();
    for i in 0..3 {
        let phone = UdpUa::bind(&format!("127.0.74.{}", 11 + i)).await;
        phone
            .send(
                proxy,
                &register(DOMAIN, "bob", phone.addr, &format!("mb{i}")),
            )
            .await;
        let (ok, _) = phone.recv("200 to REGISTER").await;
        assert_eq!(ok.status(), Some(200));
        phones.push(phone);
    }
    let alice = UdpUa::bind("127.0.74.3").await;
    let ruri = format!("sip:bob@{DOMAIN}");
    let with_breadth = |b: u32, id: &str| {
        invite(&ruri, &format!("alice@{DOMAIN}"), alice.addr, id).replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\nMax-Breadth: {b}\r\n"),
            1,
        )
    };

    let sent = with_breadth(2, "mb");
    alice.send(proxy, &sent).await;
    let wait = Duration::from_secs(1);
    let (a, b, c) = tokio::join!(
        phones[0].try_recv(wait),
        phones[1].try_recv(wait),
        phones[2].try_recv(wait)
    );
    let got: Vec<_> = [a, b, c].into_iter().collect();
    let rung: Vec<usize> = (0..3).filter(|&i| got[i].is_some()).collect();
    assert_eq!(rung.len(), 2, "two branches in parallel, not three");
    for &i in &rung {
        let (inv, from) = got[i].as_ref().unwrap();
        assert_eq!(inv.header(HeaderName::MaxBreadth), Some("1"));
        phones[i]
            .send(*from, &reply(inv, 486, "Busy Here", "busy", phones[i].addr))
            .await;
    }
    let last = (0..3).find(|i| !rung.contains(i)).unwrap();
    let inv = phones[last]
        .recv_request("INVITE", "the third branch")
        .await;
    assert_eq!(inv.header(HeaderName::MaxBreadth), Some("2"));
    phones[last]
        .send(
            proxy,
            &reply(&inv, 486, "Busy Here", "busy", phones[last].addr),
        )
        .await;
    let (fin, _) = alice.recv_final("486 for the call").await;
    assert_eq!(fin.status(), Some(486));
    alice.send(proxy, &ack(&sent, &fin)).await;

    let sent = with_breadth(0, "mb0");
    alice.send(proxy, &sent).await;
    let (fin, _) = alice.recv_final("440").await;
    assert_eq!(fin.status(), Some(440));
    alice.send(proxy, &ack(&sent, &fin)).await;
}
