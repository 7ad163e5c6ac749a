//! Hostile policies (`policies/testing/`): an endless loop, memory growth
//! to the cap, a trap, a panic and a 1 MiB header value. Each is contained:
//! the INVITE promptly gets the tenant's failure behaviour (fail-closed:
//! 503 + Retry-After; fail-open: default routing), another tenant's calls
//! are untouched, a policy that keeps failing is quarantined, and a module
//! built against another WIT world is refused with a clear message.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchyard::policy::tenants::ModuleSource;
use switchyard::policy::wasm::FailureMode;
use switchyard::{Config, Node, NodeHandle};
use switchyard_codec::HeaderName;
use switchyard_tests::policy::{add_tenant, admin_load, module, policy, status, wasm, wasm_bytes};
use switchyard_tests::sipp::{Sipp, UAC_CALL, UAC_REGISTER, UAS_ANSWER};
use switchyard_tests::ua::{UdpUa, ack, first_line, header, invite, register, reply};
use switchyard_tests::{DOMAIN, finish, ip, start_node_with, stop, udp_addr};

/// Each hostile module and the short name of its tenants.
const HOSTILE: [(&str, &str); 5] = [
    ("spin", module::SPIN),
    ("memory-bomb", module::MEMORY_BOMB),
    ("trap", module::TRAP),
    ("panic", module::PANIC),
    ("huge-header", module::HUGE_HEADER),
];

/// Far below any SIP timer (Timer B is 64·T1): a contained failure answers
/// within this, a hanging one would not.
const PROMPT: Duration = Duration::from_secs(1);

/// Tenants `<name>-closed` and `<name>-open` on domains of the same name,
/// starting on the bundled default: the hostile module is loaded after
/// start, so a refusal names the module.
fn add_failure_tenants(c: &mut Config, name: &str) {
    for (suffix, mode) in [
        ("closed", FailureMode::FailClosed),
        ("open", FailureMode::FailOpen),
    ] {
        let tenant = format!("{name}-{suffix}");
        let p = policy("builtin:default", mode, "");
        add_tenant(c, &tenant, &format!("{tenant}.test"), Some(p));
    }
}

async fn load(node: &NodeHandle, tenant: &str, file: &str) {
    let tenants = node.tenants().unwrap();
    if let Err(e) = tenants.load(tenant, ModuleSource::File(wasm(file))).await {
        panic!("{file} must load (its misbehaviour is at call time): {e}");
    }
}

/// INVITEs `bob@<tenant>.test` from `caller`, expecting the fail-closed
/// answer promptly (then ACKs it).
async fn expect_refused(caller: &UdpUa, proxy: SocketAddr, tenant: &str, id: &str) {
    let text = invite(
        &format!("sip:bob@{tenant}.test"),
        "carol@good.test",
        caller.addr,
        &format!("{tenant}-{id}"),
    );
    let sent = Instant::now();
    let answer = caller.request(proxy, &text, "the failure answer").await;
    let took = sent.elapsed();
    caller.send(proxy, &ack(&text, &answer)).await;
    assert_eq!(
        (answer.status(), answer.reason()),
        (Some(503), Some("Policy Unavailable")),
        "{tenant}: {}",
        first_line(&answer)
    );
    let retry_after = answer.header(HeaderName::RetryAfter).unwrap_or_default();
    assert!(
        retry_after.trim().parse::<u32>().is_ok(),
        "{tenant}: Retry-After {retry_after:?}"
    );
    assert!(took < PROMPT, "{tenant}: answered after {took:?}");
}

/// INVITEs `bob@<tenant>.test`, expecting default routing to `phone`
/// promptly and without the policy's edits.
async fn expect_routed(caller: &UdpUa, phone: &UdpUa, proxy: SocketAddr, tenant: &str, id: &str) {
    let text = invite(
        &format!("sip:bob@{tenant}.test"),
        "carol@good.test",
        caller.addr,
        &format!("{tenant}-{id}"),
    );
    let sent = Instant::now();
    caller.send(proxy, &text).await;
    let got = phone
        .recv_request("INVITE", &format!("{tenant}'s call by default routing"))
        .await;
    assert!(
        sent.elapsed() < PROMPT,
        "{tenant}: routed after {:?}",
        sent.elapsed()
    );
    assert_eq!(
        got.request_uri_str(),
        Some(format!("sip:bob@{}", phone.addr).as_str())
    );
    assert!(
        header(&got, "X-Huge").is_none(),
        "{tenant}: the refused edit was applied"
    );
    assert!(
        got.as_bytes().len() < 4096,
        "{tenant}: {} bytes forwarded",
        got.as_bytes().len()
    );
    phone
        .send(proxy, &reply(&got, 603, "Decline", "bob", phone.addr))
        .await;
    let answer = caller
        .recv_matching("the phone's 603", |m| m.status().is_some_and(|s| s >= 200))
        .await;
    assert_eq!(
        answer.status(),
        Some(603),
        "{tenant}: {}",
        first_line(&answer)
    );
    caller.send(proxy, &ack(&text, &answer)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_policies_get_their_tenants_failure_mode_and_spare_other_tenants() {
    const GOOD_CALLS: u64 = 100;
    let node = start_node_with("127.0.62.1", |c| {
        c.policy.hook_deadline_ms = 5;
        c.policy.quarantine_after = 100;
        for (name, _) in HOSTILE {
            add_failure_tenants(c, name);
        }
        let tagging = wasm(module::TAGGING).display().to_string();
        let good = policy(&tagging, FailureMode::FailClosed, r#"version = "good""#);
        add_tenant(c, "good", "good.test", Some(good));
    })
    .await;
    let proxy = udp_addr(&node);
    for (name, file) in HOSTILE {
        load(&node, &format!("{name}-closed"), file).await;
        load(&node, &format!("{name}-open"), file).await;
    }
    let phone = UdpUa::bind("127.0.62.4").await;
    let caller = UdpUa::bind("127.0.62.5").await;
    for (name, _) in HOSTILE {
        let domain = format!("{name}-open.test");
        let ok = phone
            .request(
                proxy,
                &register(&domain, "bob", phone.addr, name),
                "200 to REGISTER",
            )
            .await;
        assert_eq!(ok.status(), Some(200), "{domain}: {}", first_line(&ok));
    }

    // The good tenant's calls run all along.
    let callee = Sipp::uas(UAS_ANSWER).local(ip(62, 2), 5070).spawn();
    let reg = Sipp::uac(UAC_REGISTER)
        .remote(proxy)
        .local(ip(62, 3), 0)
        .users(["carol"])
        .set("domain", "good.test")
        .set("uas", "127.0.62.2:5070")
        .set("expires", "300");
    finish(reg.spawn()).await.assert_success();
    let good_load = Sipp::uac(UAC_CALL)
        .remote(proxy)
        .local(ip(62, 3), 0)
        .users(["carol"])
        .set("domain", "good.test")
        .calls(GOOD_CALLS)
        .rate(20)
        .timeout(Duration::from_secs(60))
        .spawn();

    for round in 0..3 {
        for (name, _) in HOSTILE {
            let id = round.to_string();
            expect_refused(&caller, proxy, &format!("{name}-closed"), &id).await;
            expect_routed(&caller, &phone, proxy, &format!("{name}-open"), &id).await;
        }
    }
    for (name, _) in HOSTILE {
        for tenant in [format!("{name}-closed"), format!("{name}-open")] {
            let s = status(&node, &tenant);
            assert!(s.failures >= 3, "{tenant}: failures counted: {s:?}");
            assert!(!s.quarantined, "{tenant}: {s:?}");
        }
    }

    finish(good_load).await.assert_calls(GOOD_CALLS, 0);
    stop(callee).await.assert_calls(GOOD_CALLS, 0);
    assert_eq!(status(&node, "good").failures, 0);
    node.shutdown().await;
}

/// A node on 127.0.`net`.1 whose `trap-closed` and `trap-open` tenants
/// run the trapping policy, quarantined after 3 consecutive failures, and a
/// phone registered as bob@trap-open.test.
async fn start_trap(net: u8) -> (NodeHandle, SocketAddr, UdpUa, UdpUa) {
    let node = start_node_with(&format!("127.0.{net}.1"), |c| {
        c.policy.quarantine_after = 3;
        c.policy.quarantine_secs = 600;
        add_failure_tenants(c, "trap");
    })
    .await;
    let proxy = udp_addr(&node);
    load(&node, "trap-closed", module::TRAP).await;
    load(&node, "trap-open", module::TRAP).await;
    let phone = UdpUa::bind(&format!("127.0.{net}.4")).await;
    let caller = UdpUa::bind(&format!("127.0.{net}.5")).await;
    let reg = register("trap-open.test", "bob", phone.addr, "r");
    let ok = phone.request(proxy, &reg, "200 to REGISTER").await;
    assert_eq!(ok.status(), Some(200), "{}", first_line(&ok));
    (node, proxy, phone, caller)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_keeps_failing_is_quarantined_and_the_tenant_runs_its_fallback() {
    let (node, proxy, _phone, caller) = start_trap(63).await;
    for i in 0..3 {
        let s = status(&node, "trap-closed");
        assert!(!s.quarantined, "quarantined after {i} failures: {s:?}");
        expect_refused(&caller, proxy, "trap-closed", &i.to_string()).await;
    }
    let s = status(&node, "trap-closed");
    assert!(s.quarantined && s.failures == 3, "{s:?}");
    // Quarantined: the fallback answers without calling the guest.
    expect_refused(&caller, proxy, "trap-closed", "quarantined").await;
    assert_eq!(
        status(&node, "trap-closed").failures,
        3,
        "the guest was not called"
    );
    // The tenant next door is not quarantined by it.
    assert!(!status(&node, "trap-open").quarantined);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_open_policy_that_fails_every_request_is_quarantined_too() {
    let (node, proxy, phone, caller) = start_trap(65).await;
    for i in 0..3 {
        expect_routed(&caller, &phone, proxy, "trap-open", &i.to_string()).await;
    }
    let s = status(&node, "trap-open");
    assert!(s.quarantined && s.failures == 3, "{s:?}");
    expect_routed(&caller, &phone, proxy, "trap-open", "quarantined").await;
    assert_eq!(
        status(&node, "trap-open").failures,
        3,
        "the guest was not called"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_of_another_wit_world_is_refused_with_a_clear_message() {
    const WORLD: &str = "switchyard:policy/policy";
    let node = start_node_with("127.0.64.1", |c| {
        c.admin.listen = Some("127.0.64.1:0".parse().unwrap());
        let tagging = wasm(module::TAGGING).display().to_string();
        let v1 = policy(&tagging, FailureMode::FailClosed, r#"version = "v1""#);
        add_tenant(c, "ww", "ww.test", Some(v1));
    })
    .await;
    let running = status(&node, "ww").version;

    let tenants = node.tenants().unwrap();
    let refused = tenants
        .load("ww", ModuleSource::File(wasm(module::WRONG_WORLD)))
        .await
        .expect_err("a wrong-world module is refused");
    let message = refused.to_string();
    assert!(
        message.contains(WORLD) && message.contains(module::WRONG_WORLD),
        "{message}"
    );

    let admin = node.admin_addr().unwrap();
    let refused = admin_load(
        admin,
        "ww",
        wasm_bytes(module::WRONG_WORLD),
        "wrong-world.wasm",
    )
    .await
    .expect_err("the admin endpoint refuses it too");
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused.message.contains(WORLD) && refused.message.contains("wrong-world.wasm"),
        "{refused:?}"
    );
    assert_eq!(
        status(&node, "ww").version,
        running,
        "the running version stays"
    );

    // The running version still serves: its tag is on the forwarded INVITE.
    let proxy = udp_addr(&node);
    let phone = UdpUa::bind("127.0.64.4").await;
    let caller = UdpUa::bind("127.0.64.5").await;
    let ok = phone
        .request(proxy, &register("ww.test", "bob", phone.addr, "r"), "200")
        .await;
    assert_eq!(ok.status(), Some(200), "{}", first_line(&ok));
    let text = invite("sip:bob@ww.test", "carol@ww.test", caller.addr, "after");
    caller.send(proxy, &text).await;
    let got = phone
        .recv_request("INVITE", "the call after the refusal")
        .await;
    assert_eq!(header(&got, "X-Policy-Version"), Some("v1"));
    node.shutdown().await;

    // A node configured with it does not start, and says why.
    let mut config = Config::for_tests(&["udp:127.0.64.2:0"], &[DOMAIN]);
    let path = wasm(module::WRONG_WORLD).display().to_string();
    add_tenant(
        &mut config,
        "ww",
        "ww.test",
        Some(policy(&path, FailureMode::FailClosed, "")),
    );
    let error = match Node::start(config).await {
        Ok(_) => panic!("a node with a wrong-world policy must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(WORLD) && error.contains(&path), "{error}");
}
