//! Digest authentication on the wire (`[auth] enabled`): REGISTER is
//! challenged 401 and initial requests from the node's users 407, one
//! challenge per algorithm, strongest first; a user may register only
//! their own AOR and call only as themselves; an unknown user looks
//! exactly like a wrong password; a stranger may reach our users but not
//! relay elsewhere; the subscriber file is re-read while the node runs;
//! an unreachable nonce ledger fails closed (503).
//! The client side computes its answers with the same digest module the
//! node uses, checked against RFC 7616's vectors in its unit tests.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard::auth::digest::{self, Algorithm, Qop};
use switchyard::net::Transport;
use switchyard::policy::wasm::FailureMode;
use switchyard_codec::{HeaderName, SipMessage};
use switchyard_tests::policy::{module, policy, wasm};
use switchyard_tests::softphone::bindings;
use switchyard_tests::ua::{self, UdpUa, msg};
use switchyard_tests::{algorithms, start_node_with_users};

const IP: &str = "127.0.63.1";

/// A REGISTER of `user` binding the UA's own address.
fn register(ua: &UdpUa, user: &str, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    msg(
        "REGISTER sip:{ip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-reg-{user}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{ip}>;tag=r-{user}\r\n\
         To: <sip:{user}@{ip}>\r\n\
         Call-ID: reg-{user}-{me}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{me}>\r\n\
         {auth}Expires: 300\r\n\
         Content-Length: 0\r\n\r\n",
        &[
            ("ip", IP),
            ("me", &ua.addr.to_string()),
            ("user", user),
            ("cseq", &cseq.to_string()),
            ("auth", &auth),
        ],
    )
}

/// An INVITE from `from@from_domain` to `to`.
fn invite(
    ua: &UdpUa,
    from: &str,
    from_domain: &str,
    to: &str,
    id: &str,
    auth: Option<&str>,
) -> String {
    let auth = auth.map_or(String::new(), |a| format!("Proxy-Authorization: {a}\r\n"));
    msg(
        "INVITE {to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-inv-{id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from}@{fd}>;tag=i-{id}\r\n\
         To: <{to}>\r\n\
         Call-ID: inv-{id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{from}@{me}>\r\n\
         {auth}Content-Length: 0\r\n\r\n",
        &[
            ("to", to),
            ("me", &ua.addr.to_string()),
            ("from", from),
            ("fd", from_domain),
            ("id", id),
            ("auth", &auth),
        ],
    )
}

/// `name="value"` or `name=value` out of a challenge.
fn param(challenge: &str, name: &str) -> String {
    let rest = challenge
        .split_once(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {challenge}"))
        .1;
    match rest.strip_prefix('"') {
        Some(q) => q.split('"').next().unwrap_or_default().to_string(),
        None => rest
            .split([',', ' '])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The answer to the challenge of algorithm `alg` in `resp`.
fn answer(
    resp: &SipMessage,
    header: HeaderName,
    alg: Algorithm,
    user: &str,
    pw: &str,
    method: &str,
    uri: &str,
) -> String {
    let challenge = resp
        .header_values(header)
        .find(|c| param(c, "algorithm") == alg.name())
        .unwrap_or_else(|| panic!("no {} challenge in {resp:?}", alg.name()));
    let (realm, nonce) = (param(challenge, "realm"), param(challenge, "nonce"));
    let ha1 = digest::ha1(alg, user, &realm, pw);
    let (nc, cnonce) = ("00000001", "0a4f113b");
    let response = digest::response(
        alg,
        &ha1,
        &nonce,
        Some((Qop::Auth, nc, cnonce)),
        method,
        uri,
        b"",
    );
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
        alg.name()
    )
}

fn challenges(resp: &SipMessage, header: HeaderName) -> Vec<String> {
    resp.header_values(header)
        .map(|c| param(c, "algorithm"))
        .collect()
}

/// A REGISTER of `aor` from `ua`, challenged (401) and answered with
/// `user`'s password under `alg`: the answer to the second one.
async fn register_as(
    ua: &UdpUa,
    proxy: SocketAddr,
    aor: &str,
    (user, pw): (&str, &str),
    alg: Algorithm,
) -> SipMessage {
    let first = ua.request(proxy, &register(ua, aor, 1, None), "401").await;
    assert_eq!(first.status(), Some(401), "{first:?}");
    let auth = answer(
        &first,
        HeaderName::WwwAuthenticate,
        alg,
        user,
        pw,
        "REGISTER",
        &format!("sip:{IP}"),
    );
    ua.request(proxy, &register(ua, aor, 2, Some(&auth)), "the answer")
        .await
}

/// bob on a UA of his own, registered with his password (401, then 200).
async fn registered_bob(proxy: SocketAddr) -> UdpUa {
    let bob = UdpUa::bind(IP).await;
    let ok = register_as(&bob, proxy, "bob", ("bob", "builder"), Algorithm::Md5).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    bob
}

async fn node_and_ua() -> (switchyard::NodeHandle, SocketAddr, UdpUa) {
    node_and_ua_with(|_| {}).await
}

async fn node_and_ua_with(
    tweak: impl FnOnce(&mut switchyard::config::Config),
) -> (switchyard::NodeHandle, SocketAddr, UdpUa) {
    // Every algorithm, strongest first (RFC 8760 phones).
    let node = start_node_with_users(IP, &[("alice", "wonderland"), ("bob", "builder")], |c| {
        algorithms(&["SHA-512-256", "SHA-256", "MD5"])(c);
        tweak(c);
    })
    .await;
    let proxy = node.addr(Transport::Udp);
    (node, proxy, UdpUa::bind(IP).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_challenged_then_accepted_with_each_algorithm() {
    let (node, proxy, ua) = node_and_ua().await;
    let first = ua
        .request(proxy, &register(&ua, "alice", 1, None), "401")
        .await;
    assert_eq!(first.status(), Some(401), "{first:?}");
    assert_eq!(
        challenges(&first, HeaderName::WwwAuthenticate),
        ["SHA-512-256", "SHA-256", "MD5"]
    );
    assert!(
        bindings(&node, "alice", IP).await.is_empty(),
        "nothing stored before proof"
    );
    let mut challenge = first;
    for (cseq, alg) in [
        (2, Algorithm::Md5),
        (4, Algorithm::Sha256),
        (6, Algorithm::Sha512_256),
    ] {
        let auth = answer(
            &challenge,
            HeaderName::WwwAuthenticate,
            alg,
            "alice",
            "wonderland",
            "REGISTER",
            &format!("sip:{IP}"),
        );
        let ok = ua
            .request(proxy, &register(&ua, "alice", cseq, Some(&auth)), "200")
            .await;
        assert_eq!(ok.status(), Some(200), "{}: {ok:?}", alg.name());
        // A fresh nonce for the next algorithm (each nonce-count is used once).
        challenge = ua
            .request(proxy, &register(&ua, "alice", cseq + 1, None), "401")
            .await;
    }
    assert_eq!(bindings(&node, "alice", IP).await.len(), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_wrong_password_and_replay_get_the_same_challenge() {
    let (node, proxy, ua) = node_and_ua().await;
    let first = ua
        .request(proxy, &register(&ua, "alice", 1, None), "401")
        .await;
    let uri = format!("sip:{IP}");
    let wrong = answer(
        &first,
        HeaderName::WwwAuthenticate,
        Algorithm::Md5,
        "alice",
        "looking-glass",
        "REGISTER",
        &uri,
    );
    let a = ua
        .request(proxy, &register(&ua, "alice", 2, Some(&wrong)), "401")
        .await;
    let first_m = ua
        .request(proxy, &register(&ua, "mallory", 1, None), "401")
        .await;
    let unknown = answer(
        &first_m,
        HeaderName::WwwAuthenticate,
        Algorithm::Md5,
        "mallory",
        "x",
        "REGISTER",
        &uri,
    );
    let b = ua
        .request(proxy, &register(&ua, "mallory", 2, Some(&unknown)), "401")
        .await;
    // Same status, reason and challenge shape: nothing tells them apart.
    for r in [&a, &b] {
        assert_eq!(r.status(), Some(401), "{r:?}");
        assert_eq!(
            challenges(r, HeaderName::WwwAuthenticate),
            ["SHA-512-256", "SHA-256", "MD5"]
        );
        assert!(
            r.header_values(HeaderName::WwwAuthenticate)
                .all(|c| !c.contains("stale"))
        );
    }
    assert_eq!(a.start_line(), b.start_line());
    // The right answer works once; the same nonce-count again is stale.
    let right = answer(
        &first,
        HeaderName::WwwAuthenticate,
        Algorithm::Md5,
        "alice",
        "wonderland",
        "REGISTER",
        &uri,
    );
    let ok = ua
        .request(proxy, &register(&ua, "alice", 3, Some(&right)), "200")
        .await;
    assert_eq!(ok.status(), Some(200));
    let again = ua
        .request(proxy, &register(&ua, "alice", 4, Some(&right)), "stale 401")
        .await;
    assert_eq!(again.status(), Some(401));
    assert!(
        again
            .header_values(HeaderName::WwwAuthenticate)
            .all(|c| c.contains("stale=true")),
        "{again:?}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_registers_only_their_own_aor() {
    let (node, proxy, ua) = node_and_ua().await;
    // alice's valid credentials on a REGISTER for bob.
    let alice = ("alice", "wonderland");
    let refused = register_as(&ua, proxy, "bob", alice, Algorithm::Sha256).await;
    assert_eq!(refused.status(), Some(403), "{refused:?}");
    assert!(bindings(&node, "bob", IP).await.is_empty());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_out_need_proof_strangers_reach_users_but_cannot_relay() {
    // The tenant's policy shows what it was told of the caller
    // (`caller.current-origin`) in an X-Caller header.
    let (node, proxy, ua) = node_and_ua_with(|c| {
        let tagging = wasm(module::TAGGING).display().to_string();
        c.tenants.policies.insert(
            "default".into(),
            policy(
                &tagging,
                FailureMode::FailClosed,
                "version = \"v1\"\nprobe = true",
            ),
        );
    })
    .await;
    // bob registers (authenticated) so he can be called.
    let bob = registered_bob(proxy).await;

    // alice calls bob: 407 first, then through, credentials consumed.
    let to = format!("sip:bob@{IP}");
    let challenge = ua
        .request(proxy, &invite(&ua, "alice", IP, &to, "a1", None), "407")
        .await;
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    assert_eq!(
        challenges(&challenge, HeaderName::ProxyAuthenticate),
        ["SHA-512-256", "SHA-256", "MD5"]
    );
    let auth = answer(
        &challenge,
        HeaderName::ProxyAuthenticate,
        Algorithm::Sha512_256,
        "alice",
        "wonderland",
        "INVITE",
        &to,
    );
    ua.send(proxy, &invite(&ua, "alice", IP, &to, "a2", Some(&auth)))
        .await;
    let at_bob = bob.recv_request("INVITE", "alice's INVITE at bob").await;
    assert!(
        at_bob.header(HeaderName::ProxyAuthorization).is_none(),
        "{at_bob:?}"
    );
    assert_eq!(
        ua::header(&at_bob, "X-Caller"),
        Some(format!("authenticated alice@{IP}").as_str())
    );

    // alice's credentials do not let her call as bob (caller-ID spoofing).
    let c = ua
        .request(
            proxy,
            &invite(&ua, "bob", IP, &to, "a3", None),
            "407 for bob",
        )
        .await;
    let as_alice = answer(
        &c,
        HeaderName::ProxyAuthenticate,
        Algorithm::Md5,
        "alice",
        "wonderland",
        "INVITE",
        &to,
    );
    let spoof = ua
        .request(
            proxy,
            &invite(&ua, "bob", IP, &to, "a4", Some(&as_alice)),
            "403",
        )
        .await;
    assert_eq!(spoof.status(), Some(403), "{spoof:?}");

    // A stranger reaches our user without credentials...
    let stranger = UdpUa::bind("127.0.63.2").await;
    stranger
        .send(
            proxy,
            &invite(&stranger, "eve", "elsewhere.test", &to, "s1", None),
        )
        .await;
    let at_bob = bob
        .recv_request("INVITE", "the stranger's INVITE at bob")
        .await;
    assert_eq!(ua::header(&at_bob, "X-Caller"), Some("anonymous"));
    // ...but cannot use the node as a relay to another domain.
    let relay = stranger
        .request(
            proxy,
            &invite(
                &stranger,
                "eve",
                "elsewhere.test",
                "sip:carol@127.0.63.3:5999",
                "s2",
                None,
            ),
            "403",
        )
        .await;
    assert_eq!(relay.status(), Some(403), "{relay:?}");
    assert_eq!(relay.start_line(), "SIP/2.0 403 Relaying Denied");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_added_to_the_file_can_register_without_a_restart() {
    let (node, proxy, ua) = node_and_ua().await;
    let config = node
        .config()
        .auth
        .subscribers
        .clone()
        .expect("subscriber file");
    switchyard::auth::edit_file(&config, |users| {
        users.push(switchyard::auth::Subscriber::new(IP, "carol", "c4r0l"))
    })
    .unwrap();
    // The watcher re-reads the file within its settle time; retry until then.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut cseq = 1;
    loop {
        let c = ua
            .request(proxy, &register(&ua, "carol", cseq, None), "401")
            .await;
        let auth = answer(
            &c,
            HeaderName::WwwAuthenticate,
            Algorithm::Md5,
            "carol",
            "c4r0l",
            "REGISTER",
            &format!("sip:{IP}"),
        );
        let r = ua
            .request(
                proxy,
                &register(&ua, "carol", cseq + 1, Some(&auth)),
                "answer",
            )
            .await;
        if r.status() == Some(200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "carol never accepted: {r:?}"
        );
        cseq += 2;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown().await;
}

/// `svcrack` (Debian's sipvicious) guessing alice's 4-digit password
/// from a dictionary of 1..=100: it finds it when wrong answers are not
/// throttled, and not with the default throttle (3 wrong guesses per
/// source and user per minute, then 403 for a doubling back-off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_cracker_finds_nothing_with_the_default_throttle() {
    let unthrottled = start_node_with_users("127.0.63.4", &[("alice", "0042")], |c| {
        c.auth.throttle.max_failures = 1_000_000;
        c.auth.throttle.max_failures_per_source = 1_000_000;
    })
    .await;
    let found = svcrack(&unthrottled, "127.0.63.4", "127.0.63.5").await;
    assert!(
        found.contains("0042"),
        "svcrack should crack an unthrottled node:\n{found}"
    );
    unthrottled.shutdown().await;

    let node = start_node_with_users("127.0.63.6", &[("alice", "0042")], |_| {}).await;
    let found = svcrack(&node, "127.0.63.6", "127.0.63.7").await;
    assert!(
        !found.contains("0042"),
        "the throttle let svcrack through:\n{found}"
    );
    assert!(node.stats().auth_throttled.get() > 0);
    // The real alice, from her own address, is not locked out.
    let ua = UdpUa::bind("127.0.63.6").await;
    let proxy = node.addr(Transport::Udp);
    let register_at = |ua: &UdpUa, cseq, auth: Option<&str>| {
        register(ua, "alice", cseq, auth).replace("127.0.63.1", "127.0.63.6")
    };
    let c = ua.request(proxy, &register_at(&ua, 1, None), "401").await;
    let auth = answer(
        &c,
        HeaderName::WwwAuthenticate,
        Algorithm::Md5,
        "alice",
        "0042",
        "REGISTER",
        "sip:127.0.63.6",
    );
    let ok = ua
        .request(proxy, &register_at(&ua, 2, Some(&auth)), "200")
        .await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    node.shutdown().await;
}

/// Runs svcrack against `node` (domain `ip`) from `from`; its output.
async fn svcrack(node: &switchyard::NodeHandle, ip: &str, from: &str) -> String {
    let port = node.addr(Transport::Udp).port().to_string();
    let dir = switchyard_tests::run_dir("svcrack", ip);
    let args = [
        "-u",
        "alice",
        "-r",
        "1-100",
        "-z",
        "4",
        "-b",
        from,
        "-x",
        from,
        "-p",
        &port,
        "--maximumtime",
        "5",
        ip,
    ];
    let out = tokio::process::Command::new("svcrack")
        .args(args)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("svcrack finishes within a minute")
        .unwrap_or_else(|e| {
            panic!("svcrack (sipvicious) not found: run tests/install-tools.sh: {e}")
        });
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Early rejections are answered once, outside any transaction: a 407
/// (or a 403) to a source that may be spoofed is not retransmitted (no
/// Timer G), and the ACK for it, which carries no Route of ours, is not
/// relayed anywhere, not even to the Request-URI it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_sent_once_and_their_acks_go_nowhere() {
    let (node, proxy, ua) = node_and_ua().await;
    let carol = UdpUa::bind("127.0.63.3").await;
    let to = format!("sip:carol@{}", carol.addr);
    let inv = invite(&ua, "alice", IP, &to, "once1", None);
    let challenge = ua.request(proxy, &inv, "407").await;
    assert_eq!(challenge.status(), Some(407));
    // Test T1 is 100 ms: Timer G would have re-sent it at 100 and 300 ms.
    assert!(
        ua.try_recv(Duration::from_millis(500)).await.is_none(),
        "407 retransmitted"
    );
    let to_tag = challenge.to().unwrap().tag().unwrap().to_string();
    let ack = msg(
        "ACK {to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-inv-once1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{ip}>;tag=i-once1\r\n\
         To: <{to}>;tag={tag}\r\n\
         Call-ID: inv-once1\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        &[
            ("to", &to),
            ("me", &ua.addr.to_string()),
            ("ip", IP),
            ("tag", &to_tag),
        ],
    );
    ua.send(proxy, &ack).await;
    // A stranger's made-up in-dialog ACK towards carol is not relayed either.
    let forged = ack
        .replace("z9hG4bK-inv-once1", "z9hG4bK-forged")
        .replace("tag=i-once1", "tag=forged");
    ua.send(proxy, &forged).await;
    assert!(
        carol.try_recv(Duration::from_millis(500)).await.is_none(),
        "an ACK without our route was relayed"
    );

    // A stranger calling a number of ours nobody has gets one 480 (after
    // its 100 Trying), not a transaction's worth of them: a scan from
    // forged addresses must not be amplified. Our own users get the full
    // transaction (the 407 above was the only exception for them).
    let stranger = UdpUa::bind("127.0.63.9").await;
    let scan = invite(
        &stranger,
        "eve",
        "elsewhere.test",
        &format!("sip:nobody@{IP}"),
        "scan1",
        None,
    );
    let (not_found, _) = {
        stranger.send(proxy, &scan).await;
        stranger.recv_final("480 for the scan").await
    };
    assert_eq!(not_found.status(), Some(480), "{not_found:?}");
    assert!(
        stranger
            .try_recv(Duration::from_millis(500))
            .await
            .is_none(),
        "480 retransmitted to an unvouched source"
    );
    node.shutdown().await;
}

/// `;tag=x` on the To header no longer opens a way around authentication
/// and policies: an in-dialog request is routed only when it carries our
/// Record-Route with its sealed dialog token, which the calls of our own
/// users do (their ACK and BYE reach the callee).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dialog_requests_need_our_record_route_token() {
    let (node, proxy, ua) = node_and_ua().await;
    let carol = UdpUa::bind("127.0.63.8").await;
    let to = format!("sip:carol@{}", carol.addr);
    let made_up = |id: &str, route: &str| {
        msg(
            "INVITE {to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-dlg-{id}\r\n\
             Max-Forwards: 70\r\n\
             Route: {route}\r\n\
             From: <sip:eve@elsewhere.test>;tag=e-{id}\r\n\
             To: <{to}>;tag=x\r\n\
             Call-ID: dlg-{id}\r\n\
             CSeq: 2 INVITE\r\n\
             Contact: <sip:eve@{me}>\r\n\
             Content-Length: 0\r\n\r\n",
            &[
                ("to", &to),
                ("me", &ua.addr.to_string()),
                ("id", id),
                ("route", route),
            ],
        )
    };
    // Our address as Route, with no token, or with a forged one: 403.
    for (id, route) in [
        ("plain", format!("<sip:{proxy};lr>")),
        (
            "forged",
            format!("<sip:{proxy};lr;dlg=AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA>"),
        ),
    ] {
        let answer = ua.request(proxy, &made_up(id, &route), "403").await;
        assert_eq!(answer.status(), Some(403), "{id}: {answer:?}");
    }
    assert!(
        carol.try_recv(Duration::from_millis(300)).await.is_none(),
        "relayed to carol"
    );

    // A real dialog: bob registered, alice (authenticated) calls him, the
    // INVITE's Record-Route holds the token, the BYE along it reaches bob.
    let bob = registered_bob(proxy).await;
    let bob_uri = format!("sip:bob@{IP}");
    let c = ua
        .request(
            proxy,
            &invite(&ua, "alice", IP, &bob_uri, "d1", None),
            "407",
        )
        .await;
    let auth = answer(
        &c,
        HeaderName::ProxyAuthenticate,
        Algorithm::Md5,
        "alice",
        "wonderland",
        "INVITE",
        &bob_uri,
    );
    ua.send(
        proxy,
        &invite(&ua, "alice", IP, &bob_uri, "d2", Some(&auth)),
    )
    .await;
    let at_bob = bob.recv_request("INVITE", "INVITE at bob").await;
    let rr = at_bob
        .header(HeaderName::RecordRoute)
        .expect("record-routed")
        .to_string();
    assert!(rr.contains(";dlg="), "{rr}");
    let bye = msg(
        "BYE sip:bob@{bob} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-dlg-bye\r\n\
         Max-Forwards: 70\r\n\
         Route: {rr}\r\n\
         From: <sip:alice@{ip}>;tag=i-d2\r\n\
         To: <{bob_uri}>;tag=b1\r\n\
         Call-ID: inv-d2\r\n\
         CSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        &[
            ("bob", &bob.addr.to_string()),
            ("me", &ua.addr.to_string()),
            ("rr", &rr),
            ("ip", IP),
            ("bob_uri", &bob_uri),
        ],
    );
    ua.send(proxy, &bye).await;
    bob.recv_request("BYE", "BYE along the Record-Route at bob")
        .await;
    node.shutdown().await;
}

/// With a Cassandra store the nonce ledger is its `nonce_uses` table: when
/// the cluster cannot be reached, a right answer (checked against the
/// subscriber file) is refused with 503 and Retry-After, never accepted
/// unclaimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_answer_gets_503_when_the_nonce_ledger_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let node = start_node_with_users(IP, &[("alice", "wonderland")], |c| {
        c.store.backend = "cassandra".into();
        c.store.cassandra.contact_points = vec![format!("127.0.0.1:{closed}")];
        c.store.cassandra.request_timeout_ms = 500;
        c.store.cassandra.connect_timeout_ms = 500;
    })
    .await;
    let proxy = node.addr(Transport::Udp);
    let ua = UdpUa::bind(IP).await;
    let alice = ("alice", "wonderland");
    let refused = register_as(&ua, proxy, "alice", alice, Algorithm::Md5).await;
    assert_eq!(refused.status(), Some(503), "{refused:?}");
    assert!(
        refused.start_line().contains("Nonce Ledger Unavailable"),
        "{refused:?}"
    );
    assert!(refused.header(HeaderName::RetryAfter).is_some());
    node.shutdown().await;
}

/// A tenant's trusted peer (`[tenants.trusted]`, its PBX or gateway)
/// sends for the tenant's users without credentials, even to other
/// domains; the same request from anywhere else is challenged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_trusted_pbx_calls_out_unchallenged() {
    let (node, proxy, _ua) = node_and_ua_with(|c| {
        c.tenants
            .trusted
            .insert("default".into(), vec!["127.0.63.10/32".parse().unwrap()]);
    })
    .await;
    let pbx = UdpUa::bind("127.0.63.10").await;
    let elsewhere = UdpUa::bind("127.0.63.12").await;
    let carrier = UdpUa::bind("127.0.63.11").await;
    let to = format!("sip:+15550100@{}", carrier.addr);

    pbx.send(proxy, &invite(&pbx, "alice", IP, &to, "pbx1", None))
        .await;
    let at_carrier = carrier
        .recv_request("INVITE", "the PBX's call at the carrier")
        .await;
    assert_eq!(at_carrier.call_id().unwrap(), "inv-pbx1");

    let challenged = elsewhere
        .request(
            proxy,
            &invite(&elsewhere, "alice", IP, &to, "pbx2", None),
            "407",
        )
        .await;
    assert_eq!(challenged.status(), Some(407), "{challenged:?}");
    node.shutdown().await;
}

/// Third-party registration (RFC 3261 §10.3 step 3) where the tenant
/// opted in (`[tenants] third_party_register`): its policy decides, seeing
/// the proof's user in `caller.current-origin`. The tagging policy lets
/// alice register bob's AOR (`delegates`) and refuses the reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_policy_decides_who_registers_whose_aor() {
    let (node, proxy, ua) = node_and_ua_with(|c| {
        c.tenants.third_party_register = vec!["default".into()];
        let tagging = wasm(module::TAGGING).display().to_string();
        c.tenants.policies.insert(
            "default".into(),
            policy(
                &tagging,
                FailureMode::FailClosed,
                "version = \"v1\"\ndelegates = { bob = [\"alice\"] }",
            ),
        );
    })
    .await;
    let (alice, bob) = (("alice", "wonderland"), ("bob", "builder"));
    let ok = register_as(&ua, proxy, "bob", alice, Algorithm::Sha256).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(bindings(&node, "bob", IP).await.len(), 1);

    let refused = register_as(&ua, proxy, "alice", bob, Algorithm::Sha256).await;
    assert_eq!(refused.start_line(), "SIP/2.0 403 Not Your AOR");
    assert!(bindings(&node, "alice", IP).await.is_empty());
    node.shutdown().await;
}
