//! Loading a module: every check a new version passes before anyone can
//! call it. Nothing is published here; the caller swaps the returned version
//! in only when this succeeded, so a bad module leaves the old one running.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use thiserror::Error;

use super::FailureMode;
use super::bindings::{PolicyPre, hooks};
use super::compile::{self, CompiledFrom};
use super::convert::{self, Decoder};
use super::engine::PolicyEngine;
use super::failure::FailureKind;
use super::host_api::GuestContext;
use super::instance::{Instance, InstantiateError};
use super::version::{PolicyVersion, VersionParts};
use switchyard_proto::net::{Source, Transport};

/// What to load, for which tenant.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub tenant: String,
    /// Where the bytes came from, for logs and `policy list`: a file path or
    /// `builtin:<name>`.
    pub source: String,
    pub bytes: Arc<[u8]>,
    /// The tenant's policy config as JSON text (`{}` when there is none),
    /// handed to `init` of every instance.
    pub config_json: String,
    pub failure: FailureMode,
}

/// Why a module was refused. The old version (if any) keeps running.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{module}: the module is empty")]
    Empty { module: String },
    #[error("{module}: not a valid WebAssembly component (build it for wasm32-wasip2): {detail}")]
    Compile { module: String, detail: String },
    #[error("{module}: imports {import}, which policies may not use: {why}")]
    ForbiddenImport {
        module: String,
        import: String,
        why: &'static str,
    },
    #[error("{module}: component does not implement switchyard:policy/policy@0.1.1: {detail}")]
    WrongWorld { module: String, detail: String },
    #[error("{module}: init refused the tenant's policy config: {message}")]
    InitFailed { module: String, message: String },
    #[error("{module}: {stage} failed ({kind}): {detail}")]
    Crashed {
        module: String,
        /// `instantiate or init`, or `smoke call`.
        stage: &'static str,
        kind: FailureKind,
        detail: String,
    },
    #[error(
        "{module}: the smoke call of on-request returned a decision the host refuses: {detail}"
    )]
    BadDecision { module: String, detail: String },
    #[error(
        "no instance available to validate the module: the node's policy instance pool (max_instances) is full"
    )]
    PoolExhausted,
}

impl PolicyEngine {
    /// Compiles (or finds in the cache), checks and warms up a module; the
    /// returned version holds one ready instance. CPU-bound for a cold
    /// compile (tens of ms per 100 KB): call it from `spawn_blocking`.
    ///
    /// Checks, in order: non-empty; a valid component; imports limited to our
    /// interfaces and std's tolerated WASI; the `policy` world's exports
    /// with the right types; instantiation and `init(config)` under the hook
    /// deadline and memory cap; an `on-request` smoke call with a synthetic
    /// OPTIONS (whose side effects, e.g. kv writes, are real).
    pub fn load(&self, spec: LoadSpec) -> Result<Arc<PolicyVersion>, LoadError> {
        let module = spec.source;
        if spec.bytes.is_empty() {
            return Err(LoadError::Empty { module });
        }
        let inner = &self.inner;
        let hash = compile::content_hash(&spec.bytes);
        let (component, compiled_from) = inner
            .compiled
            .get_or_compile(&inner.engine, &hash, &spec.bytes)
            .map_err(|error| LoadError::Compile {
                module: module.clone(),
                detail: format!("{error:#}"),
            })?;
        if compiled_from == CompiledFrom::Compiler {
            tracing::debug!(policy = %module, bytes = spec.bytes.len(), "policy compiled");
        }
        compile::check_imports(&inner.engine, &component).map_err(|forbidden| {
            LoadError::ForbiddenImport {
                module: module.clone(),
                import: forbidden.import,
                why: forbidden.why,
            }
        })?;
        let wrong_world = |error: wasmtime::Error| LoadError::WrongWorld {
            module: module.clone(),
            detail: format!("{error:#}"),
        };
        let mut linker = inner.linker.clone();
        // What is left are std's tolerated WASI imports (checked above):
        // calling one traps.
        compile::stub_tolerated_wasi(&mut linker, &inner.engine, &component)
            .map_err(wrong_world)?;
        let pre = linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = PolicyPre::new(pre).map_err(wrong_world)?;
        // Absent in components of world `policy` and of WIT before 0.1.2.
        let dialog = super::bindings::dialog::GuestIndices::new(pre.instance_pre()).ok();

        let (kv, metrics) = inner.tenant_state(&spec.tenant);
        let ctx = Arc::new(GuestContext::new(
            spec.tenant.as_str().into(),
            module.as_str().into(),
            compile::hex(&hash)[..12].into(),
            kv,
            metrics,
            inner.location.clone(),
            inner.config.utc_offset_minutes,
        ));
        let version = PolicyVersion::new(VersionParts {
            engine: inner.clone(),
            pre,
            dialog,
            ctx,
            policy_config: spec.config_json,
            hash,
            compiled_from,
            failure: spec.failure,
        });
        let mut instance = warm_up(&version, &module)?;
        version.ask_dialog_interest(&mut instance);
        smoke_call(
            &mut instance,
            &spec.tenant,
            inner.config.deadline_ticks(),
            &module,
        )?;
        version.adopt(instance);
        tracing::info!(
            tenant = %spec.tenant,
            policy = %module,
            version = %version.short_hash(),
            compiled_from = ?compiled_from,
            "policy loaded"
        );
        Ok(Arc::new(version))
    }
}

/// Instantiates the version's first instance and runs its `init`.
fn warm_up(version: &PolicyVersion, module: &str) -> Result<Instance, LoadError> {
    let slot = version.reserve_slot().ok_or(LoadError::PoolExhausted)?;
    version.instantiate(slot).map_err(|error| match error {
        InstantiateError::PoolExhausted => LoadError::PoolExhausted,
        InstantiateError::Init(message) => LoadError::InitFailed {
            module: module.to_owned(),
            message,
        },
        InstantiateError::Failed { kind, error } => LoadError::Crashed {
            module: module.to_owned(),
            stage: "instantiate or init",
            kind,
            detail: crash_detail(&error),
        },
    })
}

/// Calls `on-request` once with a synthetic OPTIONS, so a module that traps,
/// spins or answers garbage on an ordinary request never goes live.
fn smoke_call(
    instance: &mut Instance,
    tenant: &str,
    ticks: u64,
    module: &str,
) -> Result<(), LoadError> {
    const MESSAGE: &[u8] = b"OPTIONS sip:smoke-test@switchyard.invalid SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsmoke\r\n\
Max-Forwards: 70\r\n\
From: <sip:smoke-test@switchyard.invalid>;tag=smoke\r\n\
To: <sip:smoke-test@switchyard.invalid>\r\n\
Call-ID: smoke-test@127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";
    let local: SocketAddr = (Ipv4Addr::LOCALHOST, 5060).into();
    let request = hooks::Request {
        tenant: tenant.to_owned(),
        method: "OPTIONS".into(),
        request_uri: "sip:smoke-test@switchyard.invalid".into(),
        message: MESSAGE.to_vec(),
        source: convert::wit_source(&Source {
            transport: Transport::Udp,
            remote: local,
            local,
        }),
        bindings: Vec::new(),
        ctx: Vec::new(),
    };
    instance.prepare(ticks);
    let result = instance
        .guest
        .switchyard_policy_hooks()
        .call_on_request(&mut instance.store, &request);
    match result {
        Ok(raw) => Decoder::default()
            .request(raw)
            .map(|_| instance.calls += 1)
            .map_err(|bad| LoadError::BadDecision {
                module: module.to_owned(),
                detail: bad.0,
            }),
        Err(error) => Err(LoadError::Crashed {
            module: module.to_owned(),
            stage: "smoke call",
            kind: super::failure::classify(&error, instance.store.data().memory.hit),
            detail: crash_detail(&error),
        }),
    }
}

fn crash_detail(error: &wasmtime::Error) -> String {
    format!(
        "{}\n{}",
        error.root_cause(),
        super::failure::backtrace(error)
    )
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
