//! The bundled `hosted-pbx` policy through a running proxy: two tenants on
//! two domains, each with its own extension `101`, ring groups, voicemail on
//! busy, blocked callers and a registration cap.
//!
//! Phones are bare UAs where the test asserts what reaches them (which
//! phone, which Request-URI, which CANCEL); SIPp plays real callees where a
//! complete call is the point (busy → voicemail).
//!
//! The ring group runs on both stores: the embedded one here, and a
//! Cassandra cluster (`SWITCHYARD_CASSANDRA=host:port`, reported as ignored
//! otherwise) with the members registered through another node, so the
//! policy's `location.lookup` reads what the node's read cache fetched.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use switchyard::cassandra::{CassandraConfig, CassandraStore};
use switchyard::location::Aor;
use switchyard::policy::tenants::ModuleSource;
use switchyard::policy::wasm::FailureMode;
use switchyard::{Config, NodeHandle};
use switchyard_tests::policy::{add_tenant, admin_get, eventually, policy, status};
use switchyard_tests::sipp::{Sipp, UAC_CALL, UAC_REGISTER, UAS_ANSWER, UAS_BUSY};
use switchyard_tests::ua::{UdpUa, ack, first_line, invite, register, reply};
use switchyard_tests::{finish, ip, start_node_with, stop, udp_addr};

/// Acme's dial plan. `VOICEMAIL` is replaced by each test's voicemail host.
const ACME: &str = r#"
voicemail = "sip:vm-{ext}@VOICEMAIL"
blocked_callers = ["666"]
max_registrations = 2

[extensions]
"101" = "alice"
"102" = "bob"

[ring_groups.600]
members = ["101", "102"]

[ring_groups.601]
members = ["102", "101"]
strategy = "serial"
"#;

/// Globex: its own `101`, no voicemail, nobody blocked, no cap.
const GLOBEX: &str = r#"
[extensions]
"101" = "zed"
"#;

/// A node on 127.0.`net`.1 serving acme.test and globex.test, each tenant
/// running the built-in hosted-pbx with its own plan.
async fn start_pbx(net: u8, voicemail: &str) -> NodeHandle {
    start_pbx_with(net, voicemail, |_| {}).await
}

/// [`start_pbx`] with `tweak` applied last (the store, the cluster).
async fn start_pbx_with(net: u8, voicemail: &str, tweak: impl FnOnce(&mut Config)) -> NodeHandle {
    start_node_with(&format!("127.0.{net}.1"), |c| {
        c.admin.listen = Some(format!("127.0.{net}.1:0").parse().unwrap());
        let acme = ACME.replace("VOICEMAIL", voicemail);
        let pbx = |plan: &str| policy("builtin:hosted-pbx", FailureMode::FailClosed, plan);
        add_tenant(c, "acme", "acme.test", Some(pbx(&acme)));
        add_tenant(c, "globex", "globex.test", Some(pbx(GLOBEX)));
        tweak(c);
    })
    .await
}

/// Registers `user@domain` with the UA's own address as its contact.
async fn register_phone(proxy: SocketAddr, phone: &UdpUa, user: &str, domain: &str) {
    let id = format!("{user}-{domain}");
    let ok = phone
        .request(
            proxy,
            &register(domain, user, phone.addr, &id),
            "200 to REGISTER",
        )
        .await;
    assert_eq!(
        ok.status(),
        Some(200),
        "REGISTER {user}@{domain}: {}",
        first_line(&ok)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_101_rings_the_phone_of_the_tenant_called() {
    let node = start_pbx(50, "127.0.50.9:5070").await;
    let proxy = udp_addr(&node);
    let alice = UdpUa::bind("127.0.50.2").await; // acme 101
    let zed = UdpUa::bind("127.0.50.3").await; // globex 101
    let caller = UdpUa::bind("127.0.50.4").await;
    register_phone(proxy, &alice, "alice", "acme.test").await;
    register_phone(proxy, &zed, "zed", "globex.test").await;

    for (n, phone, user, domain) in [
        (1, &alice, "alice", "acme.test"),
        (2, &zed, "zed", "globex.test"),
    ] {
        let ruri = format!("sip:101@{domain}");
        let call = invite(
            &ruri,
            &format!("carol@{domain}"),
            caller.addr,
            &format!("ext-{n}"),
        );
        let phone_side = async {
            let got = phone
                .recv_request("INVITE", &format!("the call to {ruri}"))
                .await;
            // The first INVITE this phone sees is the call to its own tenant's 101,
            // retargeted to the contact it registered.
            assert_eq!(
                got.request_uri_str(),
                Some(format!("sip:{user}@{}", phone.addr).as_str())
            );
            assert_eq!(got.to().unwrap().uri.to_string(), ruri);
            phone
                .send(proxy, &reply(&got, 603, "Decline", user, phone.addr))
                .await;
        };
        let (answer, ()) = tokio::join!(
            caller.request(proxy, &call, "the phone's answer"),
            phone_side
        );
        assert_eq!(answer.status(), Some(603), "{}", first_line(&answer));
        assert_eq!(
            answer.to().unwrap().tag(),
            Some(user),
            "answered by {user}'s phone"
        );
        caller.send(proxy, &ack(&call, &answer)).await;
    }
    // The policy's own counters, per tenant, on the node's /metrics.
    let (code, metrics) = admin_get(node.admin_addr().unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    for tenant in ["acme", "globex"] {
        let series =
            format!("switchyard_guest_pbx_calls_extension_total{{tenant=\"{tenant}\"}} 1\n");
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_ring_group_rings_every_member_and_the_first_200_wins() {
    let node = start_pbx(51, "127.0.51.9:5070").await;
    let proxy = udp_addr(&node);
    let alice = UdpUa::bind("127.0.51.2").await;
    let bob = UdpUa::bind("127.0.51.3").await;
    let caller = UdpUa::bind("127.0.51.4").await;
    register_phone(proxy, &alice, "alice", "acme.test").await;
    register_phone(proxy, &bob, "bob", "acme.test").await;
    ring_group_600(proxy, &alice, &bob, &caller).await;
    node.shutdown().await;
}

/// The same ring group on a Cassandra cluster of two nodes: the members
/// register through node B, the call arrives at node A, whose policy finds
/// them in A's read cache (filled by a refresh or the prefetch, not by any
/// REGISTER through A). The INVITEs reach the phones through B, their edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]
async fn parallel_ring_group_on_cassandra_finds_members_registered_through_another_node() {
    let cassandra = cassandra_keyspace().await;
    let on_cassandra = |node: &'static str| {
        let cassandra = cassandra.clone();
        move |c: &mut Config| {
            c.node_id = node.into();
            c.cluster.secret = Some("policy_pbx cassandra test secret".into());
            c.store.backend = "cassandra".into();
            c.store.cassandra = cassandra;
        }
    };
    let node_b = start_pbx_with(57, "127.0.57.9:5070", on_cassandra("b")).await;
    let node_a = start_pbx_with(56, "127.0.56.9:5070", on_cassandra("a")).await;
    let alice = UdpUa::bind("127.0.56.2").await;
    let bob = UdpUa::bind("127.0.56.3").await;
    let caller = UdpUa::bind("127.0.56.4").await;
    register_phone(udp_addr(&node_b), &alice, "alice", "acme.test").await;
    register_phone(udp_addr(&node_b), &bob, "bob", "acme.test").await;

    // What the policy on A will read: nothing until A's cache has it.
    let store = node_a.store();
    for user in ["alice", "bob"] {
        let aor = Aor::parse(&format!("{user}@acme.test")).unwrap();
        eventually(
            &format!("{aor} in node a's read cache"),
            Duration::from_secs(10),
            || {
                store
                    .cached(&aor, SystemTime::now())
                    .filter(|bindings| bindings.len() == 1)
            },
        )
        .await;
    }
    ring_group_600(udp_addr(&node_a), &alice, &bob, &caller).await;
    node_a.shutdown().await;
    node_b.shutdown().await;
}

/// `[store.cassandra]` for `SWITCHYARD_CASSANDRA`, in a keyspace created
/// for this run.
async fn cassandra_keyspace() -> CassandraConfig {
    let points = std::env::var("SWITCHYARD_CASSANDRA")
        .expect("SWITCHYARD_CASSANDRA=host:port[,host:port] must be set for this test");
    let dc = std::env::var("SWITCHYARD_CASSANDRA_DC").unwrap_or_else(|_| "datacenter1".into());
    let config = CassandraConfig {
        contact_points: points.split(',').map(|p| p.trim().to_owned()).collect(),
        local_dc: Some(dc.clone()),
        keyspace: format!("switchyard_e2e_{:012x}", rand_suffix()),
        replication: [(dc, 1)].into_iter().collect(),
        request_timeout_ms: 10_000,
        connect_timeout_ms: 60_000,
        create_schema: true,
        ..CassandraConfig::default()
    };
    // Created once here, so the two nodes do not race to create it.
    CassandraStore::connect(config.clone())
        .await
        .expect("connect to the cluster and create the schema");
    CassandraConfig {
        create_schema: false,
        ..config
    }
}

fn rand_suffix() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        >> 16
}

/// Calls ring group 600 (alice and bob, in parallel) through `proxy`:
/// both ring, alice answers, bob's branch is cancelled.
async fn ring_group_600(proxy: SocketAddr, alice: &UdpUa, bob: &UdpUa, caller: &UdpUa) {
    let call = invite("sip:600@acme.test", "carol@acme.test", caller.addr, "group");
    caller.send(proxy, &call).await;
    // Both members ring before anyone answers.
    let at_alice = alice
        .recv_request("INVITE", "ring group call at alice")
        .await;
    let at_bob = bob.recv_request("INVITE", "ring group call at bob").await;
    bob.send(proxy, &reply(&at_bob, 180, "Ringing", "bob", bob.addr))
        .await;
    alice
        .send(
            proxy,
            &reply(&at_alice, 180, "Ringing", "alice", alice.addr),
        )
        .await;
    alice
        .send(proxy, &reply(&at_alice, 200, "OK", "alice", alice.addr))
        .await;

    let answer = caller
        .recv_matching("the 200 of the ring group", |m| m.status() == Some(200))
        .await;
    assert_eq!(answer.to().unwrap().tag(), Some("alice"));
    // §16.7 step 10: the other member's branch is cancelled.
    let cancel = bob
        .recv_request("CANCEL", "the CANCEL of bob's branch")
        .await;
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        at_bob.top_via().unwrap().branch(),
        "the CANCEL matches bob's INVITE"
    );
    bob.send(proxy, &reply(&cancel, 200, "OK", "bob", bob.addr))
        .await;
    bob.send(
        proxy,
        &reply(&at_bob, 487, "Request Terminated", "bob", bob.addr),
    )
    .await;
    bob.recv_request("ACK", "the proxy's ACK of the 487").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_hunt_group_rings_the_next_member_after_a_busy_one() {
    let node = start_pbx(52, "127.0.52.9:5070").await;
    let proxy = udp_addr(&node);
    let alice = UdpUa::bind("127.0.52.2").await;
    let bob = UdpUa::bind("127.0.52.3").await;
    let caller = UdpUa::bind("127.0.52.4").await;
    register_phone(proxy, &alice, "alice", "acme.test").await;
    register_phone(proxy, &bob, "bob", "acme.test").await;

    // Group 601 hunts bob (102) first, then alice (101).
    let call = invite("sip:601@acme.test", "carol@acme.test", caller.addr, "hunt");
    caller.send(proxy, &call).await;
    let at_bob = bob.recv_request("INVITE", "the hunt's first member").await;
    assert!(
        alice.try_recv(Duration::from_millis(300)).await.is_none(),
        "a serial group must not ring alice while bob is still ringing"
    );
    bob.send(proxy, &reply(&at_bob, 486, "Busy Here", "bob", bob.addr))
        .await;
    bob.recv_request("ACK", "the proxy's ACK of the 486").await;
    let at_alice = alice
        .recv_request("INVITE", "the hunt's second member")
        .await;
    assert_eq!(
        at_alice.request_uri_str(),
        Some(format!("sip:alice@{}", alice.addr).as_str())
    );
    alice
        .send(proxy, &reply(&at_alice, 200, "OK", "alice", alice.addr))
        .await;
    let answer = caller
        .recv_matching("the 200 of the hunt group", |m| m.status() == Some(200))
        .await;
    assert_eq!(answer.to().unwrap().tag(), Some("alice"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_extension_fails_over_to_voicemail() {
    let node = start_pbx(53, "127.0.53.9:5070").await;
    let proxy = udp_addr(&node);
    let busy_phone = Sipp::uas(UAS_BUSY).local(ip(53, 2), 5070).spawn();
    let voicemail = Sipp::uas(UAS_ANSWER).local(ip(53, 9), 5070).spawn();
    let reg = Sipp::uac(UAC_REGISTER)
        .remote(proxy)
        .local(ip(53, 3), 0)
        .users(["alice"])
        .set("domain", "acme.test")
        .set("uas", "127.0.53.2:5070")
        .set("expires", "300");
    finish(reg.spawn()).await.assert_success();

    // 101 is busy (486): on-branch-failure relays to sip:vm-101@..., which answers.
    let call = Sipp::uac(UAC_CALL)
        .remote(proxy)
        .local(ip(53, 3), 0)
        .users(["101"])
        .set("domain", "acme.test")
        .timeout(Duration::from_secs(20));
    finish(call.spawn()).await.assert_calls(1, 0);
    stop(busy_phone).await.assert_calls(1, 0);
    stop(voicemail).await.assert_calls(1, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_caller_is_declined_in_its_tenant_only() {
    let node = start_pbx(54, "127.0.54.9:5070").await;
    let proxy = udp_addr(&node);
    let alice = UdpUa::bind("127.0.54.2").await;
    let zed = UdpUa::bind("127.0.54.3").await;
    let caller = UdpUa::bind("127.0.54.4").await;
    register_phone(proxy, &alice, "alice", "acme.test").await;
    register_phone(proxy, &zed, "zed", "globex.test").await;

    // Acme blocks 666 with its block_code (603 Decline by default).
    let call = invite("sip:101@acme.test", "666@acme.test", caller.addr, "blocked");
    let answer = caller.request(proxy, &call, "the refusal").await;
    assert_eq!(
        (answer.status(), answer.reason()),
        (Some(603), Some("Decline"))
    );
    caller.send(proxy, &ack(&call, &answer)).await;

    // Globex blocks nobody: the same caller reaches zed (busy, no voicemail).
    let call = invite(
        "sip:101@globex.test",
        "666@globex.test",
        caller.addr,
        "allowed",
    );
    let phone_side = async {
        let got = zed.recv_request("INVITE", "globex's call from 666").await;
        zed.send(proxy, &reply(&got, 486, "Busy Here", "zed", zed.addr))
            .await;
    };
    let (answer, ()) = tokio::join!(caller.request(proxy, &call, "zed's answer"), phone_side);
    assert_eq!(answer.status(), Some(486), "{}", first_line(&answer));
    caller.send(proxy, &ack(&call, &answer)).await;
    assert!(
        alice.try_recv(Duration::from_millis(100)).await.is_none(),
        "the blocked call must not reach acme's phone"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_beyond_the_tenants_cap_are_refused_and_not_stored() {
    let node = start_pbx(55, "127.0.55.9:5070").await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.55.2").await;
    let contacts: Vec<SocketAddr> = (1..=3)
        .map(|i| format!("127.0.55.2:{}", 5070 + i).parse().unwrap())
        .collect();

    // Acme: max_registrations = 2 per AOR.
    let mut codes = Vec::new();
    for (i, contact) in contacts.iter().enumerate() {
        let req = register("acme.test", "alice", *contact, &format!("acme-{i}"));
        codes.push(ua.request(proxy, &req, "answer to REGISTER").await.status());
    }
    assert_eq!(codes, [Some(200), Some(200), Some(403)]);
    // Globex sets no cap: three contacts of zed are all stored.
    for (i, contact) in contacts.iter().enumerate() {
        let req = register("globex.test", "zed", *contact, &format!("globex-{i}"));
        let ok = ua.request(proxy, &req, "answer to REGISTER").await;
        assert_eq!(ok.status(), Some(200), "{}", first_line(&ok));
    }
    // Acme refuses users outside its plan (register_known_only).
    let req = register("acme.test", "mallory", ua.addr, "unknown");
    assert_eq!(
        ua.request(proxy, &req, "answer to REGISTER").await.status(),
        Some(404)
    );

    let stored = |user: &'static str, domain: &'static str| {
        let store = node.store();
        async move {
            let aor = Aor::new(Some(user), domain).unwrap();
            let mut contacts: Vec<String> = store
                .lookup(&aor, SystemTime::now())
                .await
                .unwrap()
                .into_iter()
                .map(|b| b.contact)
                .collect();
            contacts.sort();
            contacts
        }
    };
    let uri = |user: &str, c: &SocketAddr| format!("sip:{user}@{c}");
    assert_eq!(
        stored("alice", "acme.test").await,
        [uri("alice", &contacts[0]), uri("alice", &contacts[1])],
        "only the bindings within the cap are stored"
    );
    assert_eq!(stored("zed", "globex.test").await.len(), 3);
    assert!(stored("mallory", "acme.test").await.is_empty());
    node.shutdown().await;
}

/// A chain: `rate-limit` then `hosted-pbx`. Calls within the budget go on
/// to the dial plan (extension 101 rings alice); a call over it is refused
/// by the first link and never reaches the second. Swapping the first link
/// alone lifts the limit and leaves the dial plan's version as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_limits_before_the_dial_plan_and_one_link_swaps_alone() {
    let node = start_node_with("127.0.79.1", |c| {
        add_tenant(c, "chained", "chain.test", None);
        let link = |name: &str, module: &str, config: &str| switchyard::policy::ChainLinkConfig {
            name: name.into(),
            module: module.into(),
            failure: FailureMode::FailClosed,
            config: toml::from_str(config).unwrap(),
        };
        c.tenants.chains.insert(
            "chained".into(),
            vec![
                link(
                    "limits",
                    "builtin:rate-limit",
                    "requests_per_second = 1\nwindow_ms = 2000",
                ),
                link(
                    "pbx",
                    "builtin:hosted-pbx",
                    "[extensions]\n\"101\" = \"alice\"",
                ),
            ],
        );
    })
    .await;
    let proxy = udp_addr(&node);
    let alice = std::sync::Arc::new(UdpUa::bind("127.0.79.2").await);
    let caller = UdpUa::bind("127.0.79.3").await;
    register_phone(proxy, &alice, "alice", "chain.test").await;
    // alice's phone declines every call it gets, and counts them.
    let rung = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let phone = {
        let (alice, rung) = (alice.clone(), rung.clone());
        tokio::spawn(async move {
            loop {
                let got = alice.recv_request("INVITE", "a call").await;
                rung.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                alice
                    .send(proxy, &reply(&got, 603, "Decline", "alice", alice.addr))
                    .await;
            }
        })
    };
    let call = |n: usize| {
        let text = invite(
            "sip:101@chain.test",
            "carol@chain.test",
            caller.addr,
            &format!("chain-{n}"),
        );
        let caller = &caller;
        async move {
            let answer = caller.request(proxy, &text, "the answer").await;
            caller.send(proxy, &ack(&text, &answer)).await;
            (answer.status(), answer.reason().map(str::to_owned))
        }
    };
    // 2 calls per 2 s window: within 8 quick calls some are refused.
    let mut answers = Vec::new();
    for n in 0..8 {
        answers.push(call(n).await);
    }
    let declined = answers.iter().filter(|a| a.0 == Some(603)).count();
    let limited = answers
        .iter()
        .filter(|a| *a == &(Some(503), Some("Rate Limited".into())))
        .count();
    assert!(declined >= 2 && limited >= 3, "{answers:?}");
    assert_eq!(declined + limited, 8, "{answers:?}");
    assert_eq!(
        rung.load(std::sync::atomic::Ordering::SeqCst),
        declined,
        "a refused call never reached the dial plan"
    );

    // The first link swapped alone: no limit any more, same dial plan.
    let tenants = node.tenants().unwrap();
    let pbx_before = status(&node, "chained/pbx").version;
    tenants
        .load("chained/limits", ModuleSource::Builtin("default".into()))
        .await
        .expect("the link is swapped");
    for n in 8..14 {
        assert_eq!(call(n).await.0, Some(603), "call {n} reaches the dial plan");
    }
    assert_eq!(status(&node, "chained/pbx").version, pbx_before);
    assert_eq!(status(&node, "chained/limits").source, "builtin:default");
    phone.abort();
    node.shutdown().await;
}
