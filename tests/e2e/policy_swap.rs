//! Hot swap of a tenant's policy: under SIPp load with no failed call, new
//! behaviour on the wire from the first request after the swap, in-flight
//! calls finishing on the version they started with, bad modules refused
//! while the running version stays, and reload from a watched directory.
//!
//! The tenant's config is fixed (`version = "v1"`), so the two versions are
//! two modules: v1 is the `tagging` test policy, which puts
//! `X-Policy-Version: v1` on every request it forwards and every response
//! it passes; v2 is the bundled `default` policy, which ignores the config
//! and tags nothing. A tag on the wire therefore says which version handled
//! the transaction.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard::NodeHandle;
use switchyard::policy::tenants::ModuleSource;
use switchyard::policy::wasm::FailureMode;
use switchyard_tests::policy::{
    TempDir, add_tenant, admin_load, eventually, module, policy, status, wasm, wasm_bytes,
};
use switchyard_tests::sipp::{Sipp, UAC_CALL, UAC_REGISTER, UAS_ANSWER};
use switchyard_tests::ua::{UdpUa, ack, first_line, header, invite, register, reply};
use switchyard_tests::{finish, ip, start_node_with, stop, udp_addr};

const TAG: &str = "X-Policy-Version";
const V1_CONFIG: &str = r#"version = "v1""#;
/// How long a watched file may take to go live: a cold compile in an
/// unoptimised test build of the engine takes seconds, more on a busy machine.
const WATCH_DEADLINE: Duration = Duration::from_secs(60);

/// A registered phone and a caller on 127.0.`net`.4/.5, for calls whose
/// tags show which policy version handled them.
struct Probe {
    proxy: SocketAddr,
    domain: &'static str,
    phone: UdpUa,
    caller: UdpUa,
}

impl Probe {
    async fn new(net: u8, proxy: SocketAddr, domain: &'static str) -> Probe {
        let phone = UdpUa::bind(&format!("127.0.{net}.4")).await;
        let caller = UdpUa::bind(&format!("127.0.{net}.5")).await;
        let req = register(domain, "probe", phone.addr, "probe");
        let ok = phone.request(proxy, &req, "200 to REGISTER").await;
        assert_eq!(ok.status(), Some(200), "{}", first_line(&ok));
        Probe {
            proxy,
            domain,
            phone,
            caller,
        }
    }

    /// One call to `probe`, declined by the phone: the tag on the INVITE the
    /// phone got and the tag on the 603 the caller got.
    async fn call(&self, id: &str) -> (Option<String>, Option<String>) {
        let text = invite(
            &format!("sip:probe@{}", self.domain),
            "carol@x.test",
            self.caller.addr,
            id,
        );
        let phone_side = async {
            // Matched by Call-ID: an earlier call's INVITE may still be
            // retransmitted to the phone.
            let call_id = format!("inv-{id}@test");
            let got = self
                .phone
                .recv_matching("the probe call", |m| {
                    m.is_request() && m.call_id().ok() == Some(call_id.as_str())
                })
                .await;
            let msg = reply(&got, 603, "Decline", "probe", self.phone.addr);
            self.phone.send(self.proxy, &msg).await;
            header(&got, TAG).map(str::to_string)
        };
        let (answer, request_tag) = tokio::join!(
            self.caller.request(self.proxy, &text, "the probe's 603"),
            phone_side
        );
        assert_eq!(answer.status(), Some(603), "{}", first_line(&answer));
        self.caller.send(self.proxy, &ack(&text, &answer)).await;
        (request_tag, header(&answer, TAG).map(str::to_string))
    }
}

fn tagged(tag: &str) -> (Option<String>, Option<String>) {
    (Some(tag.to_string()), Some(tag.to_string()))
}

const UNTAGGED: (Option<String>, Option<String>) = (None, None);

/// A node on 127.0.`net`.1 whose tenant `swap` (swap.test) runs tagging v1.
async fn start_v1(net: u8, tweak: impl FnOnce(&mut switchyard::Config)) -> NodeHandle {
    start_node_with(&format!("127.0.{net}.1"), |c| {
        let tagging = wasm(module::TAGGING).display().to_string();
        let v1 = policy(&tagging, FailureMode::FailClosed, V1_CONFIG);
        add_tenant(c, "swap", "swap.test", Some(v1));
        tweak(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_sipp_load_fails_no_call_and_takes_effect_at_once() {
    const CALLS: u64 = 300;
    let node = start_v1(59, |c| {
        c.admin.listen = Some("127.0.59.1:0".parse().unwrap());
        // Another tenant runs the bundled default, so its module is compiled
        // already when the swap sends the same bytes: the warm-cache case.
        let default = policy("builtin:default", FailureMode::FailClosed, "");
        add_tenant(c, "warm", "warm.test", Some(default));
        // The deadline is wall-clock time (epoch ticks): on a 2-core machine
        // shared with SIPp and other tests, an unoptimised build of a trivial
        // hook can be descheduled past 5 ms and fail the call. This test is
        // about the swap, not the deadline (policy_hostile.rs tests that).
        c.policy.hook_deadline_ms = 100;
    })
    .await;
    let proxy = udp_addr(&node);
    let admin = node.admin_addr().expect("admin endpoint enabled");
    let callee = Sipp::uas(UAS_ANSWER).local(ip(59, 2), 5070).spawn();
    let reg = Sipp::uac(UAC_REGISTER)
        .remote(proxy)
        .local(ip(59, 3), 0)
        .users(["bob"])
        .set("domain", "swap.test")
        .set("uas", "127.0.59.2:5070")
        .set("expires", "300");
    finish(reg.spawn()).await.assert_success();
    let probe = Probe::new(59, proxy, "swap.test").await;
    assert_eq!(probe.call("before-load").await, tagged("v1"));
    let v1 = status(&node, "swap").version;

    // 50 calls/s for 6 s through the tenant's policy; each call lasts
    // 100 ms between ACK and BYE, like a (very short) real one.
    let load = Sipp::uac(UAC_CALL)
        .remote(proxy)
        .local(ip(59, 3), 0)
        .users(["bob"])
        .set("domain", "swap.test")
        .calls(CALLS)
        .rate(50)
        .limit(100)
        .pause(Duration::from_millis(100))
        .timeout(Duration::from_secs(60))
        .spawn();
    // Swap well into the run: a call makes about four hook calls.
    eventually(
        "the load to reach the policy",
        Duration::from_secs(20),
        || (status(&node, "swap").calls >= 400).then_some(()),
    )
    .await;
    assert_eq!(probe.call("under-v1").await, tagged("v1"));

    let loaded = admin_load(admin, "swap", wasm_bytes(module::DEFAULT), "v2")
        .await
        .expect("v2 accepted");
    assert!(
        loaded.elapsed_ms < 100.0,
        "swap took {} ms",
        loaded.elapsed_ms
    );
    let v2 = status(&node, "swap").version;
    assert_ne!(v2, v1);
    assert_eq!(loaded.status["version"], v2.as_str());
    // The very next transaction runs v2.
    assert_eq!(probe.call("right-after-swap").await, UNTAGGED);

    // A bad module during the load is refused; v2 keeps serving.
    let refused = admin_load(admin, "swap", b"\0asm not really".to_vec(), "garbage")
        .await
        .expect_err("garbage refused");
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused
            .message
            .contains("not a valid WebAssembly component"),
        "{refused:?}"
    );
    assert_eq!(status(&node, "swap").version, v2);
    assert_eq!(probe.call("after-refusal").await, UNTAGGED);

    let result = finish(load).await;
    result.assert_calls(CALLS, 0);
    assert!(result.is_success(), "{result}");
    stop(callee).await.assert_calls(CALLS, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_call_finishes_on_the_version_it_started_with() {
    let node = start_v1(60, |_| {}).await;
    let proxy = udp_addr(&node);
    let probe = Probe::new(60, proxy, "swap.test").await;
    let (phone, caller) = (&probe.phone, &probe.caller);

    let text = invite(
        "sip:probe@swap.test",
        "carol@x.test",
        caller.addr,
        "in-flight",
    );
    caller.send(proxy, &text).await;
    let got = phone
        .recv_request("INVITE", "the call started under v1")
        .await;
    assert_eq!(header(&got, TAG), Some("v1"));
    // 100 stops the proxy's retransmissions while the swap runs.
    phone
        .send(proxy, &reply(&got, 100, "Trying", "p", phone.addr))
        .await;

    let tenants = node.tenants().unwrap();
    tenants
        .load("swap", ModuleSource::File(wasm(module::DEFAULT)))
        .await
        .expect("v2 loads");
    // Responses of the call that started under v1 still pass through v1's
    // on-response; a call started now is v2's.
    phone
        .send(proxy, &reply(&got, 180, "Ringing", "p", phone.addr))
        .await;
    let ringing = caller
        .recv_matching("the 180", |m| m.status() == Some(180))
        .await;
    assert_eq!(header(&ringing, TAG), Some("v1"));
    phone
        .send(proxy, &reply(&got, 603, "Decline", "p", phone.addr))
        .await;
    let declined = caller
        .recv_matching("the 603", |m| m.status() == Some(603))
        .await;
    assert_eq!(header(&declined, TAG), Some("v1"));
    caller.send(proxy, &ack(&text, &declined)).await;

    assert_eq!(probe.call("new-call").await, UNTAGGED);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_dropped_into_the_watched_directory_goes_live() {
    let dir = TempDir::new("policy-watch");
    let watch_dir = dir.path().to_path_buf();
    let node = start_node_with("127.0.61.1", |c| {
        // Starts on the bundled default (which ignores the config).
        let default = policy("builtin:default", FailureMode::FailClosed, V1_CONFIG);
        add_tenant(c, "watched", "watched.test", Some(default));
        c.tenants.watch_dir = Some(watch_dir);
    })
    .await;
    let proxy = udp_addr(&node);
    let probe = Probe::new(61, proxy, "watched.test").await;
    let before = status(&node, "watched").version;
    assert_eq!(probe.call("before").await, UNTAGGED);

    // A bad file is refused. The watcher loads files one at a time in name
    // order, so once the sentinel written after it is live, the bad one
    // has been dealt with.
    dir.install("watched.wasm", b"this is not a component");
    dir.install("zz-sentinel.wasm", &wasm_bytes(module::DEFAULT));
    let tenants = node.tenants().unwrap();
    eventually("the sentinel module to load", WATCH_DEADLINE, || {
        tenants
            .list()
            .into_iter()
            .find(|t| t.tenant == "zz-sentinel" && !t.version.is_empty())
    })
    .await;
    assert_eq!(
        status(&node, "watched").version,
        before,
        "the bad file changed nothing"
    );
    assert_eq!(probe.call("after-bad-file").await, UNTAGGED);

    let path = dir.install("watched.wasm", &wasm_bytes(module::TAGGING));
    let now = eventually("the watched module to go live", WATCH_DEADLINE, || {
        let s = status(&node, "watched");
        (s.version != before).then_some(s)
    })
    .await;
    assert_eq!(now.source, path.display().to_string());
    assert_eq!(probe.call("after-reload").await, tagged("v1"));
    node.shutdown().await;
}
