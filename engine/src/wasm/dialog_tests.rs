use std::sync::Arc;

use switchyard_location::Aor;
use switchyard_proto::dialog::{CallRecord, EndReason};

use super::*;
use crate::wasm::testing::{self, FixedStore, Invite, TENANT};
use crate::wasm::{FailureMode, LoadSpec, PolicyEngine, PolicyLocation};
use crate::{Policy, PolicyCtx, RequestAction};

fn record() -> CallRecord {
    CallRecord {
        id: "n1-7".into(),
        tenant: TENANT.into(),
        call_id: "c1".into(),
        caller: "bob@acme.test".into(),
        callee: "alice@acme.test".into(),
        start_ms: 1_000,
        answer_ms: Some(2_000),
        end_ms: Some(3_500),
        duration_ms: 1_500,
        status: 200,
        end_reason: Some(EndReason::CallerBye),
        session_expires: None,
    }
}

/// Calls per user fixed by the test.
struct Counts(u32);

impl CallCounts for Counts {
    fn tenant_calls(&self, _tenant: &str) -> u32 {
        self.0 * 2
    }
    fn user_calls(&self, tenant: &str, aor: &str) -> u32 {
        assert_eq!((tenant, aor), (TENANT, "alice@acme.test"));
        self.0
    }
}

fn engine_with_calls(busy: u32) -> PolicyEngine {
    let store = FixedStore {
        aor: Aor::parse("sip:alice@acme.test").unwrap(),
        bindings: vec![testing::binding("sip:alice@127.0.0.1:5080")],
    };
    let mut tenants = crate::TenantsConfig::default();
    tenants.domains.insert("acme.test".into(), TENANT.into());
    let location = PolicyLocation::new(Arc::new(store), tenants).with_calls(Arc::new(Counts(busy)));
    PolicyEngine::new(testing::config(), Some(location)).unwrap()
}

const PBX: &str = r#"{"extensions": {"101": "alice"}, "max_calls_per_extension": 1}"#;

#[test]
fn the_dialog_hooks_run_for_a_policy_that_wants_them() {
    let engine = engine_with_calls(0);
    let pbx = engine
        .load(testing::spec("hosted_pbx", PBX, FailureMode::FailClosed))
        .unwrap();
    assert!(pbx.wants_dialog_hooks());
    pbx.on_dialog_start(&record(), &mut PolicyCtx::default());
    pbx.on_dialog_end(&record(), &mut PolicyCtx::default());
    let all = engine.metrics_snapshot();
    let snapshot = &all.iter().find(|(t, _)| t == TENANT).unwrap().1;
    assert!(
        snapshot.counters.contains(&("pbx_answered".to_string(), 1)),
        "{snapshot:?}"
    );
    let seconds = snapshot
        .histograms
        .iter()
        .find(|(n, _)| n == "pbx_call_seconds");
    assert_eq!(seconds.map(|(_, h)| h.count), Some(1), "{snapshot:?}");
    // A policy built with the SDK's default does not want them; one built
    // against WIT 0.1.1 has no such export at all. Both load and run.
    let tagging = engine
        .load(testing::spec(
            "test_tagging",
            r#"{"version":"new"}"#,
            FailureMode::FailClosed,
        ))
        .unwrap();
    assert!(!tagging.wants_dialog_hooks());
    let old = engine
        .load(LoadSpec {
            tenant: TENANT.into(),
            source: "test:tagging-0.1.1".into(),
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/policies/test_tagging-wit-0.1.1.wasm"
            ))
            .as_slice()
            .into(),
            config_json: r#"{"version":"0.1.1"}"#.into(),
            failure: FailureMode::FailClosed,
        })
        .expect("a 0.1.1 component loads on a 0.1.2 host");
    assert!(!old.wants_dialog_hooks());
    let decision = old.on_request(&Invite::to("bob").info(&[]), &mut PolicyCtx::default());
    assert_eq!(decision.action, RequestAction::Continue);
}

#[test]
fn the_calls_import_lets_a_policy_enforce_its_own_limit() {
    let invite = Invite::to("101");
    let busy = engine_with_calls(1)
        .load(testing::spec("hosted_pbx", PBX, FailureMode::FailClosed))
        .unwrap();
    let decision = busy.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    assert!(
        matches!(&decision.action, RequestAction::Reply(r) if r.code == 486),
        "{decision:?}"
    );
    let free = engine_with_calls(0)
        .load(testing::spec("hosted_pbx", PBX, FailureMode::FailClosed))
        .unwrap();
    let decision = free.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    assert!(
        matches!(&decision.action, RequestAction::Relay(_)),
        "{decision:?}"
    );
}
