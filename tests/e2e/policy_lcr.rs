//! The bundled `lcr` policy through a running proxy: the longest matching
//! prefix picks the carrier, the Request-URI becomes `number@gateway`, and
//! a carrier failing with 503 or 408 hands the call to the next one while a
//! callee's answer (486) goes straight back to the caller.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard::NodeHandle;
use switchyard::policy::wasm::FailureMode;
use switchyard_tests::policy::{add_tenant, policy};
use switchyard_tests::sipp::{Sipp, UAC_CALL, UAS_ANSWER};
use switchyard_tests::ua::{UdpUa, ack, first_line, invite, reply};
use switchyard_tests::{finish, ip, start_node_with, stop, udp_addr};

/// A node on 127.0.`net`.1 whose tenant `pstn` (domain pstn.test) routes
/// by `table` (the lcr policy's config, as TOML).
async fn start_lcr(net: u8, table: &str) -> NodeHandle {
    start_node_with(&format!("127.0.{net}.1"), |c| {
        let lcr = policy("builtin:lcr", FailureMode::FailClosed, table);
        add_tenant(c, "pstn", "pstn.test", Some(lcr));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_prefix_picks_the_carrier_and_rewrites_the_request_uri() {
    let a = UdpUa::bind("127.0.56.2").await;
    let b = UdpUa::bind("127.0.56.3").await;
    let c = UdpUa::bind("127.0.56.4").await;
    let table = format!(
        r#"
        [carriers.a]
        gateway = "sip:{}"
        [carriers.b]
        gateway = "sip:{}"
        [carriers.c]
        gateway = "sip:{}"
        tech_prefix = "99"

        [prefixes]
        "1" = ["a", "b"]
        "1212" = ["c"]
        "44" = ["b"]
        "#,
        a.addr, b.addr, c.addr
    );
    let node = start_lcr(56, &table).await;
    let proxy = udp_addr(&node);
    let caller = UdpUa::bind("127.0.56.5").await;

    let cases: [(&str, &UdpUa, String); 3] = [
        // 1212 beats 1; separators and + are stripped; c's tech prefix goes first.
        (
            "sip:+1-212-555-0100@pstn.test",
            &c,
            format!("sip:9912125550100@{}", c.addr),
        ),
        (
            "sip:13125550100@pstn.test",
            &a,
            format!("sip:13125550100@{}", a.addr),
        ),
        (
            "sip:442079460000@pstn.test",
            &b,
            format!("sip:442079460000@{}", b.addr),
        ),
    ];
    for (n, (dialled, gateway, expected)) in cases.iter().enumerate() {
        let call = invite(dialled, "pbx@acme.test", caller.addr, &format!("lcr-{n}"));
        let gateway_side = async {
            let got = gateway
                .recv_request("INVITE", &format!("the call to {dialled}"))
                .await;
            assert_eq!(
                got.request_uri_str(),
                Some(expected.as_str()),
                "for {dialled}"
            );
            gateway
                .send(proxy, &reply(&got, 200, "OK", "gw", gateway.addr))
                .await;
        };
        let (answer, ()) = tokio::join!(
            caller.request(proxy, &call, "the gateway's 200"),
            gateway_side
        );
        assert_eq!(
            answer.status(),
            Some(200),
            "{dialled}: {}",
            first_line(&answer)
        );
    }

    // No prefix matches: the policy answers, no carrier sees the call.
    let call = invite(
        "sip:33123456@pstn.test",
        "pbx@acme.test",
        caller.addr,
        "lcr-none",
    );
    let answer = caller.request(proxy, &call, "the policy's refusal").await;
    assert_eq!(
        (answer.status(), answer.reason()),
        (Some(404), Some("No Route"))
    );
    caller.send(proxy, &ack(&call, &answer)).await;
    for gw in [&a, &b, &c] {
        assert!(gw.try_recv(Duration::from_millis(50)).await.is_none());
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_carrier_hands_the_call_to_the_next_but_a_busy_callee_does_not() {
    let first: SocketAddr = "127.0.57.2:5070".parse().unwrap();
    let second: SocketAddr = "127.0.57.3:5070".parse().unwrap();
    let table = format!(
        r#"
        [carriers.first]
        gateway = "sip:{first}"
        [carriers.second]
        gateway = "sip:{second}"
        [prefixes]
        "1" = ["first", "second"]
        "#
    );
    let node = start_lcr(57, &table).await;
    let proxy = udp_addr(&node);

    for (code, reason, fails_over) in [
        (503, "Service Unavailable", true),
        (408, "Request Timeout", true),
        (486, "Busy Here", false),
    ] {
        let first_gw = Sipp::uas_reject(code, reason)
            .local(first.ip(), first.port())
            .spawn();
        let second_gw = Sipp::uas(UAS_ANSWER)
            .local(second.ip(), second.port())
            .spawn();
        let caller = if fails_over {
            Sipp::uac(UAC_CALL)
        } else {
            Sipp::uac_expect(code)
        };
        let caller = caller
            .remote(proxy)
            .local(ip(57, 4), 0)
            .users(["15550100"])
            .set("domain", "pstn.test")
            .timeout(Duration::from_secs(20));
        let result = finish(caller.spawn()).await;
        assert!(
            result.successful == 1 && result.failed == 0,
            "first carrier answering {code}: the caller's call\n{result}"
        );
        stop(first_gw).await.assert_calls(1, 0);
        let second_calls = stop(second_gw).await;
        let expected = u64::from(fails_over);
        assert!(
            second_calls.successful == expected && second_calls.failed == 0,
            "first carrier answering {code}: the second carrier should see {expected} call(s)\n{second_calls}"
        );
    }
    node.shutdown().await;
}

/// A reload while calls flow: the dial plan moves prefix 1 from carrier a
/// to carrier b and a new domain joins the tenant. No call fails; calls
/// routed after the reload go to b, and the new domain is served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_fails_no_call_and_the_next_transaction_sees_it() {
    let (a, b) = (
        SocketAddr::new(ip(68, 2), 5060),
        SocketAddr::new(ip(68, 3), 5060),
    );
    let table = |carrier: &str| {
        format!(
            r#"
            [carriers.a]
            gateway = "sip:{a}"
            [carriers.b]
            gateway = "sip:{b}"
            [prefixes]
            "1" = ["{carrier}"]
            "#
        )
    };
    let node = start_lcr(68, &table("a")).await;
    let proxy = udp_addr(&node);
    let mut reloaded = node.config().clone();
    let lcr = policy("builtin:lcr", FailureMode::FailClosed, &table("b"));
    reloaded.tenants.policies.insert("pstn".into(), lcr);
    add_tenant(&mut reloaded, "pstn", "pstn-new.test", None);
    let source = std::sync::Arc::new(reloaded);
    node.set_config_source(std::sync::Arc::new(move || Ok((*source).clone())));

    let gw_a = Sipp::uas(UAS_ANSWER).local(a.ip(), a.port()).spawn();
    let gw_b = Sipp::uas(UAS_ANSWER).local(b.ip(), b.port()).spawn();
    let caller = |domain: &str, calls: u64| {
        Sipp::uac(UAC_CALL)
            .remote(proxy)
            .local(ip(68, 4), 0)
            .users(["15550100"])
            .set("domain", domain)
            .calls(calls)
            .rate(100)
            .timeout(Duration::from_secs(30))
    };
    // 400 calls at 100/s; the reload comes once a quarter of them are
    // through (INVITE, ACK, BYE: three requests a call).
    let before = node.stats().requests_in.get();
    let load = caller("pstn.test", 400).spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.stats().requests_in.get() < before + 300 {
        assert!(std::time::Instant::now() < deadline, "the calls never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = node.reload().await.expect("the reload is accepted");
    assert_eq!(report.policies_changed, ["pstn"]);
    assert_eq!(
        report.tenants.get("pstn-new.test").map(String::as_str),
        Some("pstn")
    );
    // The next transaction, in the domain that exists only now.
    finish(caller("pstn-new.test", 1).spawn())
        .await
        .assert_calls(1, 0);
    finish(load).await.assert_calls(400, 0);
    let (on_a, on_b) = (stop(gw_a).await, stop(gw_b).await);
    assert_eq!(on_a.failed + on_b.failed, 0, "{on_a}\n{on_b}");
    assert_eq!(on_a.successful + on_b.successful, 401, "{on_a}\n{on_b}");
    assert!(
        on_a.successful >= 90,
        "the calls before the reload went to a\n{on_a}"
    );
    assert!(
        on_b.successful > 100,
        "the calls after it went to b\n{on_b}"
    );
    node.shutdown().await;
}
