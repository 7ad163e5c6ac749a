use super::*;
use crate::wasm::testing::{self, Invite, TENANT};
use crate::wasm::{EngineConfig, FailureKind};
use crate::{Policy, PolicyCtx, RequestDecision};

fn engine() -> PolicyEngine {
    testing::engine_with(testing::config())
}

fn refused(name: &str, config_json: &str) -> LoadError {
    let spec = testing::spec(name, config_json, FailureMode::FailClosed);
    engine().load(spec).expect_err("must be refused")
}

#[test]
fn loads_a_policy_with_one_warm_instance() {
    let engine = engine();
    let version = engine
        .load(testing::spec("default", "{}", FailureMode::FailOpen))
        .expect("default loads");
    let info = version.info();
    assert_eq!(info.tenant, TENANT);
    assert_eq!(info.source, "test:default");
    assert_eq!(info.hash.len(), 64);
    assert_eq!(info.short_hash(), version.short_hash());
    assert_eq!(info.compiled_from, CompiledFrom::Compiler);
    assert_eq!(info.failure_mode, FailureMode::FailOpen);
    assert_eq!((info.instances_live, info.instances_idle), (1, 1));
    assert_eq!(info.calls, 0, "the smoke call is not a hook call");

    let invite = Invite::to("bob");
    let decision = version.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    assert_eq!(decision, RequestDecision::CONTINUE);
    assert_eq!(
        version.info().instances_live,
        1,
        "the warm instance served it"
    );
}

#[test]
fn the_same_bytes_load_again_from_the_memory_cache() {
    let engine = engine();
    let spec = testing::spec("default", "{}", FailureMode::FailOpen);
    let first = engine.load(spec.clone()).unwrap();
    let second = engine.load(spec).unwrap();
    assert_eq!(first.info().compiled_from, CompiledFrom::Compiler);
    assert_eq!(second.info().compiled_from, CompiledFrom::Memory);
    assert_eq!(first.info().hash, second.info().hash);
}

#[test]
fn a_new_engine_reuses_the_precompiled_file() {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-cwasm-{}-{}",
        std::process::id(),
        line!()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        ..testing::config()
    };
    let spec = testing::spec("default", "{}", FailureMode::FailOpen);
    let cold = testing::engine_with(config.clone())
        .load(spec.clone())
        .unwrap();
    assert_eq!(cold.info().compiled_from, CompiledFrom::Compiler);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].to_string_lossy().into_owned();
    assert!(
        name.starts_with(&cold.info().hash) && name.ends_with(".cwasm"),
        "{name}"
    );

    let warm = testing::engine_with(config).load(spec).unwrap();
    assert_eq!(warm.info().compiled_from, CompiledFrom::Disk);
    let invite = Invite::to("bob");
    let decision = warm.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    assert_eq!(decision, RequestDecision::CONTINUE);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_empty_module_is_refused() {
    let mut spec = testing::spec("default", "{}", FailureMode::FailOpen);
    spec.bytes = Arc::from(Vec::new());
    let error = engine().load(spec).unwrap_err();
    assert!(matches!(error, LoadError::Empty { .. }), "{error}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let mut spec = testing::spec("default", "{}", FailureMode::FailOpen);
    spec.bytes = Arc::from(&b"\0asm\x01\0\0\0"[..]);
    let error = engine().load(spec).unwrap_err();
    assert!(matches!(error, LoadError::Compile { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("not a valid WebAssembly component"),
        "{error}"
    );
}

#[test]
fn a_wrong_world_is_refused_with_a_clear_message() {
    let error = refused("test_wrong_world", "{}");
    assert!(matches!(error, LoadError::WrongWorld { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(
            "test:test_wrong_world: component does not implement switchyard:policy/policy@0.1.1"
        ),
        "{message}"
    );
}

#[test]
fn an_import_outside_the_sandbox_is_refused_by_name() {
    let error = refused("test_wasi_sockets", "{}");
    let LoadError::ForbiddenImport { import, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(import, "wasi:sockets/raw-socket@0.2.9");
    assert!(
        error
            .to_string()
            .contains("imports wasi:sockets/raw-socket@0.2.9"),
        "{error}"
    );
}

#[test]
fn an_init_error_refuses_the_load_with_the_guests_message() {
    let error = refused("test_engine_probe", r#"{"init": "fail"}"#);
    let LoadError::InitFailed { message, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(message, "refused by test config");
}

#[test]
fn an_init_that_spins_is_cut_off_and_refused() {
    let error = refused("test_engine_probe", r#"{"init": "spin"}"#);
    assert!(
        matches!(
            error,
            LoadError::Crashed {
                kind: FailureKind::Timeout,
                stage: "instantiate or init",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_module_failing_the_smoke_call_is_refused() {
    for (case, kind) in [
        ("spin", FailureKind::Timeout),
        ("trap", FailureKind::Trap),
        ("panic", FailureKind::Trap),
        ("oom", FailureKind::OutOfMemory),
    ] {
        let config = format!(r#"{{"always": "{case}"}}"#);
        let error = refused("test_engine_probe", &config);
        match &error {
            LoadError::Crashed {
                stage: "smoke call",
                kind: got,
                ..
            } => assert_eq!(*got, kind, "{case}: {error}"),
            other => panic!("{case}: {other:?}"),
        }
    }
    let error = refused("test_engine_probe", r#"{"always": "huge"}"#);
    assert!(matches!(error, LoadError::BadDecision { .. }), "{error:?}");
    assert!(error.to_string().contains("header edits exceed"), "{error}");
}

#[test]
fn a_refused_load_leaves_no_instance_behind() {
    let engine = testing::engine_with(EngineConfig {
        max_instances: 2,
        ..testing::config()
    });
    for _ in 0..4 {
        let spec = testing::spec(
            "test_engine_probe",
            r#"{"always": "trap"}"#,
            FailureMode::FailOpen,
        );
        engine.load(spec).unwrap_err();
    }
    // Were the trapped instances leaked, the pool (2) would be exhausted.
    engine
        .load(testing::spec("default", "{}", FailureMode::FailOpen))
        .unwrap();
}

#[test]
fn the_tagging_policy_loads_with_its_config() {
    let engine = engine();
    let version = engine
        .load(testing::spec(
            "test_tagging",
            r#"{"version": "v1"}"#,
            FailureMode::FailClosed,
        ))
        .expect("tagging loads");
    let invite = Invite::to("bob");
    let decision = version.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    assert!(
        decision
            .headers
            .iter()
            .any(|h| h.name() == "X-Policy-Version"),
        "{decision:?}"
    );
    let error = engine
        .load(testing::spec("test_tagging", "{}", FailureMode::FailClosed))
        .unwrap_err();
    assert!(matches!(error, LoadError::InitFailed { .. }), "{error:?}");
}

/// A component built against WIT 0.1.0 (the `tagging` test policy before
/// 0.1.1 added `caller`, kept as a fixture) loads and runs on this host:
/// its `log@0.1.0`, `kv@0.1.0`... imports resolve to our 0.1.1 ones.
#[test]
fn a_component_built_against_wit_0_1_0_still_runs() {
    let bytes = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/policies/test_tagging-wit-0.1.0.wasm"
    ));
    let spec = LoadSpec {
        tenant: TENANT.into(),
        source: "test:tagging-0.1.0".into(),
        bytes: bytes.as_slice().into(),
        config_json: r#"{"version":"old","probe":true}"#.into(),
        failure: FailureMode::FailClosed,
    };
    let version = engine().load(spec).expect("a 0.1.0 component loads");
    let invite = Invite::to("bob");
    let decision = version.on_request(&invite.info(&[]), &mut PolicyCtx::default());
    let added = |name: &str| {
        decision.headers.iter().find_map(|e| match e {
            crate::HeaderEdit::Add { name: n, value } if n == name => Some(value.clone()),
            _ => None,
        })
    };
    assert_eq!(added("X-Policy-Version").as_deref(), Some("old"));
    // The load's smoke call counted too.
    assert_eq!(
        added("X-Call-Count").as_deref(),
        Some("2"),
        "kv@0.1.0 works"
    );
    assert!(added("X-Clock-Ms").is_some(), "clock@0.1.0 works");
    assert_eq!(added("X-Caller"), None, "0.1.0 had no caller interface");
    assert!(
        version.info().failures.iter().all(|(_, n)| *n == 0),
        "{:?}",
        version.info().failures
    );
}
