//! Hook calls through the engine-probe component: decisions, containment of
//! misbehaving calls, failure modes, quarantine, recycling and the imports.

use std::time::{Duration, Instant};

use super::*;
use crate::wasm::testing::{self, FixedStore, Invite, TENANT};
use crate::wasm::{EngineConfig, PolicyEngine, PolicyLocation};
use crate::{FailureCause, HeaderEdit, Origin, Reply, RequestAction, ResponseAction};
use switchyard_location::Aor;
use switchyard_proto::proxy::fork::Target;

fn engine() -> PolicyEngine {
    testing::engine_with(testing::config())
}

fn call(version: &PolicyVersion, user: &str) -> RequestDecision {
    call_ctx(version, user, &mut PolicyCtx::default())
}

fn call_ctx(version: &PolicyVersion, user: &str, ctx: &mut PolicyCtx) -> RequestDecision {
    let invite = Invite::to(user);
    version.on_request(&invite.info(&[]), ctx)
}

fn header<'d>(decision: &'d RequestDecision, name: &str) -> Option<&'d str> {
    decision.headers.iter().find_map(|edit| match edit {
        HeaderEdit::Add { name: n, value } | HeaderEdit::Set { name: n, value } if n == name => {
            Some(value.as_str())
        }
        _ => None,
    })
}

fn failures(version: &PolicyVersion, kind: FailureKind) -> u64 {
    let info = version.info();
    info.failures
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| *n)
}

fn unavailable(retry_after: u32) -> RequestDecision {
    RequestAction::Reply(Reply {
        code: 503,
        reason: "Policy Unavailable".into(),
        headers: vec![("Retry-After".into(), retry_after.to_string())],
    })
    .into()
}

#[test]
fn request_decisions_come_back_converted() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    let plain = call(&version, "bob");
    assert_eq!(plain.action, RequestAction::Continue);
    assert_eq!(
        plain.headers,
        vec![HeaderEdit::Add {
            name: "X-Policy".into(),
            value: "testing".into()
        }]
    );

    let busy = call(&version, "busy");
    assert_eq!(
        busy.action,
        RequestAction::Reply(Reply {
            code: 486,
            reason: "Busy Here".into(),
            headers: vec![("X-Why".into(), "test".into())],
        })
    );

    let RequestAction::Relay(groups) = call(&version, "relay").action else {
        panic!("relay expected");
    };
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0].targets,
        vec![
            Target::new("sip:a@127.0.0.1"),
            Target::new("sip:b@127.0.0.1:5070")
        ]
    );
    assert_eq!(groups[0].timeout, Some(Duration::from_millis(2000)));
    assert_eq!(
        groups[1].targets[0].route,
        vec!["<sip:127.0.0.2;lr>".to_string()]
    );
    assert_eq!(groups[1].timeout, None);

    let redirect = call(&version, "redirect");
    assert_eq!(
        redirect.action,
        RequestAction::Redirect(vec!["sip:elsewhere@127.0.0.1".into()])
    );
    assert_eq!(
        redirect.request_uri.as_deref(),
        Some("sip:rewritten@127.0.0.1")
    );
    assert_eq!(version.info().total_failures(), 0);
}

#[test]
fn edits_of_proxy_owned_headers_are_dropped_and_counted() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    let decision = call(&version, "via");
    assert_eq!(decision.headers.len(), 1);
    assert_eq!(header(&decision, "X-Ok"), Some("1"));
    assert_eq!(version.info().ignored_edits, 1);
    assert_eq!(version.info().total_failures(), 0);
}

#[test]
fn unsafe_decisions_are_refused_as_failures() {
    let version = testing::probe(&engine(), FailureMode::FailOpen);
    for user in ["crlf", "reply-200", "relay-bad", "huge"] {
        assert_eq!(call(&version, user), RequestDecision::CONTINUE, "{user}");
    }
    assert_eq!(failures(&version, FailureKind::BadDecision), 4);
    // A bad decision does not poison the instance: it went back to the pool.
    assert_eq!(version.info().instances_live, 1);
    assert_eq!(version.info().instances_idle, 1);
}

#[test]
fn a_spinning_call_is_cut_off_at_the_deadline() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    let started = Instant::now();
    let decision = call(&version, "spin");
    let elapsed = started.elapsed();
    assert_eq!(decision, unavailable(5));
    // The deadline is 100 ms here; allow for a loaded machine, not a hang.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(failures(&version, FailureKind::Timeout), 1);
    assert_eq!(
        version.info().instances_live,
        0,
        "the interrupted store was dropped"
    );
}

#[test]
fn traps_and_panics_are_contained_and_the_instance_replaced() {
    let version = testing::probe(&engine(), FailureMode::FailOpen);
    // The warm instance has served the load's smoke call: this is its 2nd.
    assert_eq!(header(&call(&version, "calls"), "X-Calls"), Some("2"));
    for user in ["trap", "panic"] {
        assert_eq!(call(&version, user), RequestDecision::CONTINUE, "{user}");
        assert_eq!(version.info().instances_live, 0, "{user}");
        // A fresh instance (its call counter starts over) serves the next call.
        assert_eq!(
            header(&call(&version, "calls"), "X-Calls"),
            Some("1"),
            "{user}"
        );
    }
    assert_eq!(failures(&version, FailureKind::Trap), 2);
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let version = testing::probe(&engine(), FailureMode::FailOpen);
    assert_eq!(call(&version, "oom"), RequestDecision::CONTINUE);
    assert_eq!(failures(&version, FailureKind::OutOfMemory), 1);
    assert_eq!(header(&call(&version, "calls"), "X-Calls"), Some("1"));
}

#[test]
fn failure_modes_decide_every_hook() {
    let engine = engine();
    for mode in [FailureMode::FailOpen, FailureMode::FailClosed] {
        let version = testing::probe(&engine, mode);
        let mut ctx = PolicyCtx::default();
        let request = call(&version, "trap");
        let register = version.on_register(&register_info("sip:trap@acme.test"), &mut ctx);
        let response = version.on_response(&response_info(599), &mut ctx);
        let failure = version.on_branch_failure(&failure_info(599), &mut ctx);
        assert_eq!(response, ResponseDecision::PASS, "{mode:?}");
        assert_eq!(failure, FailureDecision::Fail, "{mode:?}");
        match mode {
            FailureMode::FailOpen => {
                assert_eq!(request, RequestDecision::CONTINUE);
                assert_eq!(register, RegisterDecision::Allow);
            }
            FailureMode::FailClosed => {
                assert_eq!(request, unavailable(5));
                assert!(
                    matches!(&register, RegisterDecision::Reject(r) if r.code == 503 && r.headers[0].0 == "Retry-After")
                );
            }
        }
        assert_eq!(failures(&version, FailureKind::Trap), 3, "{mode:?}");
        assert_eq!(failures(&version, FailureKind::Timeout), 1, "{mode:?}");
    }
}

#[test]
fn repeated_failures_quarantine_the_version() {
    let engine = testing::engine_with(EngineConfig {
        quarantine_after: 3,
        quarantine_secs: 3600,
        ..testing::config()
    });
    let version = testing::probe(&engine, FailureMode::FailClosed);
    for _ in 0..3 {
        call(&version, "trap");
    }
    assert!(version.info().quarantined);
    // The guest is not called: a healthy request gets the fallback too and
    // its kv side effect does not happen.
    assert_eq!(call(&version, "kv"), unavailable(5));
    assert_eq!(engine.kv(TENANT).get("hits", Instant::now()), None);
    let info = version.info();
    assert_eq!(info.quarantined_calls, 1);
    assert_eq!(info.total_failures(), 3);
}

#[test]
fn a_successful_probe_ends_the_quarantine() {
    let engine = testing::engine_with(EngineConfig {
        quarantine_after: 2,
        quarantine_secs: 0,
        ..testing::config()
    });
    let version = testing::probe(&engine, FailureMode::FailClosed);
    call(&version, "trap");
    call(&version, "trap");
    assert!(version.info().quarantined);
    // The cooldown (0 s) has passed: this call probes, succeeds, closes.
    assert_eq!(header(&call(&version, "kv"), "X-Hits"), Some("1"));
    assert!(!version.info().quarantined);
    assert_eq!(header(&call(&version, "kv"), "X-Hits"), Some("2"));
}

#[test]
fn instances_are_recycled_after_max_calls() {
    let engine = testing::engine_with(EngineConfig {
        instance_max_calls: 2,
        ..testing::config()
    });
    let version = testing::probe(&engine, FailureMode::FailClosed);
    // Smoke call + this one: the warm instance is done.
    assert_eq!(header(&call(&version, "calls"), "X-Calls"), Some("2"));
    assert_eq!(version.info().recycled, 1);
    assert_eq!(header(&call(&version, "calls"), "X-Calls"), Some("1"));
}

#[test]
fn no_free_instance_means_the_fallback_never_a_wait() {
    let engine = testing::engine_with(EngineConfig {
        max_instances_per_version: 1,
        ..testing::config()
    });
    let version = testing::probe(&engine, FailureMode::FailClosed);
    let held = version
        .checkout(Checkout::OrCreate)
        .ok()
        .expect("the warm instance");
    assert_eq!(call(&version, "bob"), unavailable(5));
    assert_eq!(version.info().exhausted, 1);
    assert_eq!(version.info().total_failures(), 0, "not the policy's fault");
    version.checkin(held);
    assert_eq!(call(&version, "bob").action, RequestAction::Continue);
}

#[test]
fn on_complete_is_shed_rather_than_instantiating() {
    let engine = engine();
    let version = testing::probe(&engine, FailureMode::FailOpen);
    let summary = CompletionSummary {
        tenant: TENANT,
        method: "INVITE",
        final_status: 200,
        duration: Duration::from_millis(1500),
        targets_tried: &["sip:bob@127.0.0.1".to_string()],
    };
    version.on_complete(&summary, &mut PolicyCtx::default());
    assert_eq!(
        engine
            .kv(TENANT)
            .get("completed", Instant::now())
            .as_deref(),
        Some(&b"1"[..])
    );

    call(&version, "trap"); // drops the only instance
    version.on_complete(&summary, &mut PolicyCtx::default());
    let info = version.info();
    assert_eq!(info.shed, 1);
    assert_eq!(info.instances_live, 0, "on-complete instantiated nothing");
}

#[test]
fn ctx_travels_from_request_to_response() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    let mut ctx = PolicyCtx::default();
    call_ctx(&version, "ctx", &mut ctx);
    assert_eq!(ctx.data, b"from-request");
    let decision = version.on_response(&response_info(180), &mut ctx);
    assert_eq!(
        decision.headers,
        vec![HeaderEdit::Set {
            name: "X-Ctx".into(),
            value: "from-request".into()
        }]
    );
    assert_eq!(ctx.data, b"from-response");
    let dropped = version.on_response(&response_info(183), &mut ctx);
    assert_eq!(dropped.action, ResponseAction::Drop);
}

#[test]
fn register_and_branch_failure_decisions() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    let mut ctx = PolicyCtx::default();
    assert_eq!(
        version.on_register(&register_info("sip:alice@acme.test"), &mut ctx),
        RegisterDecision::Allow
    );
    assert_eq!(
        version.on_register(&register_info("sip:limit@acme.test"), &mut ctx),
        RegisterDecision::Limit(crate::RegisterLimits {
            max_contacts: Some(1),
            max_expires: Some(600)
        })
    );
    assert!(matches!(
        version.on_register(&register_info("sip:reject@acme.test"), &mut ctx),
        RegisterDecision::Reject(r) if r.code == 403
    ));
    let FailureDecision::Relay(groups) = version.on_branch_failure(&failure_info(486), &mut ctx)
    else {
        panic!("busy fails over");
    };
    assert_eq!(groups[0].targets[0].uri, "sip:voicemail@127.0.0.1");
    assert!(
        matches!(version.on_branch_failure(&failure_info(408), &mut ctx), FailureDecision::Reply(r) if r.code == 480)
    );
    assert_eq!(
        version.on_branch_failure(&failure_info(500), &mut ctx),
        FailureDecision::Fail
    );
}

#[test]
fn kv_is_shared_by_a_tenants_versions_and_not_across_tenants() {
    let engine = engine();
    let v1 = testing::probe(&engine, FailureMode::FailClosed);
    assert_eq!(header(&call(&v1, "kv"), "X-Hits"), Some("1"));
    assert_eq!(header(&call(&v1, "kv"), "X-Last"), Some("INVITE"));
    let v2 = testing::probe(&engine, FailureMode::FailClosed);
    assert_eq!(header(&call(&v2, "kv"), "X-Hits"), Some("3"));
    let mut other = testing::spec("test_engine_probe", "{}", FailureMode::FailClosed);
    other.tenant = "globex".into();
    let other = engine.load(other).unwrap();
    assert_eq!(header(&call(&other, "kv"), "X-Hits"), Some("1"));
    assert_eq!(
        engine.kv(TENANT).get("hits", Instant::now()).as_deref(),
        Some(&b"3"[..])
    );
}

#[test]
fn location_lookup_reads_the_store_cache() {
    // The binding expires 3600 s from now; compiling the probe on a busy
    // machine may take seconds of that.
    let made = Instant::now();
    let store = FixedStore {
        aor: Aor::parse("sip:bob@example.test").unwrap(),
        bindings: vec![testing::binding("sip:bob@127.0.0.1:5080")],
    };
    let mut tenants = crate::TenantsConfig::default();
    tenants.domains.insert("example.test".into(), TENANT.into());
    let location = PolicyLocation::new(Arc::new(store), tenants.clone());
    let engine = PolicyEngine::new(testing::config(), Some(location)).unwrap();
    let version = testing::probe(&engine, FailureMode::FailClosed);
    let prefetched = [testing::binding("sip:x@127.0.0.1")];
    let invite = Invite::to("lookup");
    let decision = version.on_request(&invite.info(&prefetched), &mut PolicyCtx::default());
    assert_eq!(header(&decision, "X-Bindings"), Some("1"));
    let found = header(&decision, "X-Lookup").unwrap();
    assert!(
        found.starts_with("sip:bob@127.0.0.1:5080;q=1000;exp="),
        "{found}"
    );
    let expires: u64 = found.rsplit('=').next().unwrap().parse().unwrap();
    let least = 3600 - made.elapsed().as_secs() - 1;
    assert!(
        (least..=3600).contains(&expires),
        "{expires}, at least {least}"
    );
}

#[test]
fn location_lookup_sees_only_the_tenants_own_domains() {
    let store = FixedStore {
        aor: Aor::parse("sip:bob@example.test").unwrap(),
        bindings: vec![testing::binding("sip:bob@127.0.0.1:5080")],
    };
    // example.test belongs to another tenant than the policy's.
    let mut tenants = crate::TenantsConfig::default();
    tenants
        .domains
        .insert("example.test".into(), "globex".into());
    let location = PolicyLocation::new(Arc::new(store), tenants);
    let engine = PolicyEngine::new(testing::config(), Some(location)).unwrap();
    let version = testing::probe(&engine, FailureMode::FailClosed);
    let invite = Invite::to("lookup");
    let decision = version.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    assert_eq!(header(&decision, "X-Lookup"), Some(""), "{decision:?}");
}

#[test]
fn guest_metrics_land_in_the_tenant_registry() {
    let engine = engine();
    let version = testing::probe(&engine, FailureMode::FailClosed);
    call(&version, "metrics");
    let all = engine.metrics_snapshot();
    let (tenant, snapshot) = &all[0];
    assert_eq!(tenant, TENANT);
    assert_eq!(snapshot.counters, vec![("calls_total".to_string(), 2)]);
    assert_eq!(snapshot.histograms[0].0, "latency_ms");
    assert_eq!(snapshot.histograms[0].1.count, 1);
    assert_eq!(snapshot.dropped, 1, "Bad-Name");
}

#[test]
fn a_chatty_guest_is_rate_limited() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    assert_eq!(call(&version, "log").action, RequestAction::Continue);
    let dropped = version.info().logs_dropped;
    assert!((900..=1000).contains(&dropped), "{dropped}");
}

#[test]
fn std_hashmap_and_clock_work_in_a_guest() {
    let version = testing::probe(&engine(), FailureMode::FailClosed);
    assert_eq!(header(&call(&version, "hash"), "X-Hash"), Some("1"));
    let now_ms: u64 = header(&call(&version, "clock"), "X-Now")
        .unwrap()
        .parse()
        .unwrap();
    let host_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(host_ms.abs_diff(now_ms) < 10_000, "{now_ms} vs {host_ms}");
}

fn register_info(aor: &str) -> RegisterInfo<'_> {
    RegisterInfo {
        tenant: TENANT,
        origin: &Origin::Unchecked,
        aor,
        contacts: vec!["<sip:alice@127.0.0.1:5070>"],
        expires: Some(3600),
        message: b"REGISTER sip:acme.test SIP/2.0\r\n\r\n",
        source: testing::source(),
    }
}

fn response_info(status: u16) -> ResponseInfo<'static> {
    ResponseInfo {
        tenant: TENANT,
        status,
        message: b"SIP/2.0 180 Ringing\r\n\r\n",
    }
}

fn failure_info(best_status: u16) -> BranchFailure<'static> {
    BranchFailure {
        tenant: TENANT,
        request: b"INVITE sip:bob@acme.test SIP/2.0\r\n\r\n",
        best_status,
        cause: FailureCause::Response(b"SIP/2.0 486 Busy Here\r\n\r\n"),
        targets_tried: &[],
    }
}
