//! One loaded version of a tenant's policy module: a pool of instances, the
//! hook calls through them, and what happens when a call fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;

use super::FailureMode;
use super::bindings::PolicyPre;
use super::compile::{CompiledFrom, ContentHash, hex};
use super::convert::{self, BadDecision, Decoder};
use super::engine::EngineInner;
use super::failure::{self, Admit, Breaker, FailureKind, Fallback, Transition};
use super::host_api::{GuestContext, HostState};
use super::info::VersionInfo;
use super::instance::{Instance, InstantiateError, Slot};
use switchyard_proto::dialog::CallRecord;

use crate::{
    BranchFailure, CompletionSummary, FailureDecision, Policy, PolicyCtx, RegisterDecision,
    RegisterInfo, RequestDecision, RequestInfo, ResponseDecision, ResponseInfo,
};

/// A policy module loaded for one tenant, ready to serve hooks. Published
/// behind an `Arc`; a transaction keeps its snapshot for all of its hooks,
/// so a hot swap never changes the policy under a running transaction.
pub struct PolicyVersion {
    engine: Arc<EngineInner>,
    pre: PolicyPre<HostState>,
    /// The `dialog-hooks` export; `None` once the policy said it does not
    /// want them (asked at load).
    dialog: Option<super::bindings::dialog::GuestIndices>,
    wants_dialog_hooks: AtomicBool,
    ctx: Arc<GuestContext>,
    /// The tenant's policy config (JSON) every new instance's `init` gets.
    policy_config: String,
    hash: ContentHash,
    loaded_at: SystemTime,
    compiled_from: CompiledFrom,
    fallback: Fallback,
    /// Instances between calls, most recently used last (reused first, so
    /// the warm ones stay warm).
    idle: Mutex<Vec<Instance>>,
    live: Arc<AtomicUsize>,
    breaker: Mutex<Breaker>,
    /// False while the breaker is closed with no failure on record, so the
    /// common call takes no breaker lock.
    troubled: AtomicBool,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    failures: [AtomicU64; FailureKind::ALL.len()],
    quarantined: AtomicU64,
    shed: AtomicU64,
    exhausted: AtomicU64,
    recycled: AtomicU64,
    ignored_edits: AtomicU64,
}

/// Which instances a call may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checkout {
    /// An idle one, or a new one within the version's budget.
    OrCreate,
    /// An idle one only: `on-complete` is shed rather than paid for.
    IdleOnly,
}

enum Unavailable {
    Shed,
    Exhausted,
    Failed {
        kind: FailureKind,
        detail: String,
        backtrace: Option<String>,
    },
}

pub(crate) struct VersionParts {
    pub engine: Arc<EngineInner>,
    pub pre: PolicyPre<HostState>,
    pub dialog: Option<super::bindings::dialog::GuestIndices>,
    pub ctx: Arc<GuestContext>,
    pub policy_config: String,
    pub hash: ContentHash,
    pub compiled_from: CompiledFrom,
    pub failure: FailureMode,
}

impl PolicyVersion {
    pub(crate) fn new(parts: VersionParts) -> PolicyVersion {
        let config = &parts.engine.config;
        let fallback = Fallback {
            mode: parts.failure,
            retry_after_secs: config.retry_after_secs,
        };
        let breaker = Breaker::new(config.quarantine_after, config.quarantine());
        PolicyVersion {
            pre: parts.pre,
            wants_dialog_hooks: AtomicBool::new(parts.dialog.is_some()),
            dialog: parts.dialog,
            ctx: parts.ctx,
            policy_config: parts.policy_config,
            hash: parts.hash,
            loaded_at: SystemTime::now(),
            compiled_from: parts.compiled_from,
            fallback,
            idle: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
            breaker: Mutex::new(breaker),
            troubled: AtomicBool::new(false),
            stats: Stats::default(),
            engine: parts.engine,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.ctx.tenant
    }

    pub fn source(&self) -> &str {
        &self.ctx.source
    }

    /// The first 12 hex digits of the module's sha256.
    pub fn short_hash(&self) -> &str {
        &self.ctx.version
    }

    pub fn info(&self) -> VersionInfo {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        VersionInfo {
            tenant: self.ctx.tenant.to_string(),
            source: self.ctx.source.to_string(),
            hash: hex(&self.hash),
            loaded_at: self.loaded_at,
            failure_mode: self.fallback.mode,
            compiled_from: self.compiled_from,
            calls: load(&self.stats.calls),
            failures: FailureKind::ALL
                .iter()
                .map(|kind| (*kind, load(&self.stats.failures[kind.index()])))
                .collect(),
            quarantined: self.breaker.lock().is_open(),
            quarantined_calls: load(&self.stats.quarantined),
            shed: load(&self.stats.shed),
            exhausted: load(&self.stats.exhausted),
            recycled: load(&self.stats.recycled),
            ignored_edits: load(&self.stats.ignored_edits),
            instances_live: self.live.load(Ordering::Relaxed),
            instances_idle: self.idle.lock().len(),
            logs_dropped: load(&self.ctx.logs_dropped),
        }
    }

    /// Asks the load's warm instance whether the policy wants the dialog
    /// hooks (`wants-dialog-hooks`); instances made from now on bind them
    /// only if it does. A trap counts as no.
    pub(crate) fn ask_dialog_interest(&self, instance: &mut Instance) {
        let Some(guest) = instance.dialog.take() else {
            return;
        };
        instance.prepare(self.engine.config.deadline_ticks());
        match guest.call_wants_dialog_hooks(&mut instance.store) {
            Ok(true) => instance.dialog = Some(guest),
            Ok(false) => self.wants_dialog_hooks.store(false, Ordering::Relaxed),
            Err(error) => {
                self.wants_dialog_hooks.store(false, Ordering::Relaxed);
                tracing::warn!(tenant = %self.ctx.tenant, policy = %self.ctx.source, %error, "wants-dialog-hooks failed: no dialog hooks");
            }
        }
    }

    /// Hands a ready instance (the load's warm one) to the pool.
    pub(crate) fn adopt(&self, instance: Instance) {
        self.idle.lock().push(instance);
    }

    pub(crate) fn reserve_slot(&self) -> Option<Slot> {
        Slot::reserve(
            &self.live,
            self.engine.config.max_instances_per_version as usize,
        )
    }

    pub(crate) fn instantiate(&self, slot: Slot) -> Result<Instance, InstantiateError> {
        Instance::create(
            &self.engine.config,
            &self.pre,
            self.dialog
                .as_ref()
                .filter(|_| self.wants_dialog_hooks.load(Ordering::Relaxed)),
            &self.ctx,
            &self.policy_config,
            slot,
        )
    }

    /// One hook call: admission (quarantine), an instance, the call under the
    /// deadline, validation of the decision. `None` means "no decision": the
    /// caller applies the fallback. Never blocks on anything but the call.
    fn run<R, D>(
        &self,
        hook: &'static str,
        checkout: Checkout,
        invoke: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
        decode: impl FnOnce(&mut Decoder, R) -> Result<D, BadDecision>,
    ) -> Option<D> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let probe = match self.admit() {
            Admit::Call => false,
            Admit::Probe => true,
            Admit::Quarantined => {
                self.stats.quarantined.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let mut instance = match self.checkout(checkout) {
            Ok(instance) => instance,
            Err(unavailable) => {
                match unavailable {
                    Unavailable::Shed => self.stats.shed.fetch_add(1, Ordering::Relaxed),
                    Unavailable::Exhausted => self.stats.exhausted.fetch_add(1, Ordering::Relaxed),
                    Unavailable::Failed {
                        kind,
                        detail,
                        backtrace,
                    } => {
                        self.failed(hook, kind, &detail, backtrace.as_deref());
                        return None;
                    }
                };
                if probe {
                    self.breaker.lock().probe_abandoned(Instant::now());
                }
                return None;
            }
        };
        instance.prepare(self.engine.config.deadline_ticks());
        let raw = match invoke(&mut instance) {
            Ok(raw) => raw,
            Err(error) => {
                let kind = failure::classify(&error, instance.store.data().memory.hit);
                // A store that trapped refuses further entry: drop it.
                drop(instance);
                let detail = error.root_cause().to_string();
                self.failed(hook, kind, &detail, Some(&failure::backtrace(&error)));
                return None;
            }
        };
        instance.calls += 1;
        self.checkin(instance);
        let mut decoder = Decoder::default();
        let decoded = decode(&mut decoder, raw);
        if decoder.ignored_edits > 0 {
            self.stats
                .ignored_edits
                .fetch_add(decoder.ignored_edits, Ordering::Relaxed);
            tracing::debug!(
                tenant = %self.ctx.tenant,
                policy = %self.ctx.source,
                version = %self.ctx.version,
                hook,
                ignored = decoder.ignored_edits,
                "policy edits of proxy-owned header fields ignored"
            );
        }
        match decoded {
            Ok(decision) => {
                self.succeeded(hook);
                Some(decision)
            }
            Err(bad) => {
                self.failed(hook, FailureKind::BadDecision, &bad.0, None);
                None
            }
        }
    }

    fn admit(&self) -> Admit {
        if !self.troubled.load(Ordering::Acquire) {
            return Admit::Call;
        }
        self.breaker.lock().admit(Instant::now())
    }

    fn checkout(&self, checkout: Checkout) -> Result<Instance, Unavailable> {
        if let Some(instance) = self.idle.lock().pop() {
            return Ok(instance);
        }
        if checkout == Checkout::IdleOnly {
            return Err(Unavailable::Shed);
        }
        let slot = self.reserve_slot().ok_or(Unavailable::Exhausted)?;
        self.instantiate(slot).map_err(|error| match error {
            InstantiateError::PoolExhausted => Unavailable::Exhausted,
            InstantiateError::Init(message) => Unavailable::Failed {
                kind: FailureKind::Instantiate,
                detail: format!("init refused the config: {message}"),
                backtrace: None,
            },
            InstantiateError::Failed { kind, error } => Unavailable::Failed {
                // The call never reached the hook; whatever went wrong, it
                // went wrong while instantiating.
                kind: if kind == FailureKind::Trap {
                    FailureKind::Instantiate
                } else {
                    kind
                },
                detail: error.root_cause().to_string(),
                backtrace: Some(failure::backtrace(&error)),
            },
        })
    }

    fn checkin(&self, instance: Instance) {
        if instance.calls >= self.engine.config.instance_max_calls {
            self.stats.recycled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.idle.lock().push(instance);
    }

    fn succeeded(&self, hook: &'static str) {
        if !self.troubled.load(Ordering::Acquire) {
            return;
        }
        let mut breaker = self.breaker.lock();
        if breaker.success(hook) == Some(Transition::Closed) {
            tracing::info!(
                tenant = %self.ctx.tenant,
                policy = %self.ctx.source,
                version = %self.ctx.version,
                "policy back from quarantine"
            );
        }
        self.troubled
            .store(breaker.is_troubled(), Ordering::Release);
    }

    fn failed(&self, hook: &'static str, kind: FailureKind, detail: &str, backtrace: Option<&str>) {
        self.stats.failures[kind.index()].fetch_add(1, Ordering::Relaxed);
        let (tenant, policy, version) = (&*self.ctx.tenant, &*self.ctx.source, &*self.ctx.version);
        let mode = self.fallback.mode.as_str();
        tracing::warn!(
            tenant,
            policy,
            version,
            hook,
            kind = kind.as_str(),
            error = detail,
            backtrace = backtrace.unwrap_or(""),
            "policy hook failed; {mode} decision applied"
        );
        let mut breaker = self.breaker.lock();
        self.troubled.store(true, Ordering::Release);
        if breaker.failure(hook, Instant::now()) == Some(Transition::Opened) {
            let secs = self.engine.config.quarantine_secs;
            tracing::warn!(
                tenant,
                policy,
                version,
                "policy quarantined for {secs} s after repeated failures; {mode} decisions apply"
            );
        }
    }
}

impl Policy for PolicyVersion {
    /// Every call is cut off at the engine's deadline.
    fn is_bounded(&self) -> bool {
        true
    }

    fn on_request(&self, req: &RequestInfo<'_>, ctx: &mut PolicyCtx) -> RequestDecision {
        let decided = self.run(
            "on-request",
            Checkout::OrCreate,
            |instance| {
                let request = instance
                    .scratch
                    .fill_request(req, &ctx.data, SystemTime::now());
                instance.store.data_mut().origin = Some(req.origin.clone());
                let hooks = instance.guest.switchyard_policy_hooks();
                let result = hooks.call_on_request(&mut instance.store, request);
                instance.store.data_mut().origin = None;
                result
            },
            |decoder, raw| decoder.request(raw),
        );
        match decided {
            Some((decision, new_ctx)) => {
                replace_ctx(ctx, new_ctx);
                decision
            }
            None => self.fallback.request(),
        }
    }

    fn on_register(&self, reg: &RegisterInfo<'_>, _ctx: &mut PolicyCtx) -> RegisterDecision {
        let register =
            convert::wit_register(reg, &self.stored_bindings(reg.aor), SystemTime::now());
        let decided = self.run(
            "on-register",
            Checkout::OrCreate,
            |instance| {
                instance.store.data_mut().origin = Some(reg.origin.clone());
                let hooks = instance.guest.switchyard_policy_hooks();
                let result = hooks.call_on_register(&mut instance.store, &register);
                instance.store.data_mut().origin = None;
                result
            },
            |decoder, raw| decoder.register(raw),
        );
        decided.unwrap_or_else(|| self.fallback.register())
    }

    fn on_response(&self, resp: &ResponseInfo<'_>, ctx: &mut PolicyCtx) -> ResponseDecision {
        let decided = self.run(
            "on-response",
            Checkout::OrCreate,
            |instance| {
                let response = instance.scratch.fill_response(resp, &ctx.data);
                let hooks = instance.guest.switchyard_policy_hooks();
                hooks.call_on_response(&mut instance.store, response)
            },
            |decoder, raw| decoder.response(raw),
        );
        match decided {
            Some((decision, new_ctx)) => {
                replace_ctx(ctx, new_ctx);
                decision
            }
            None => self.fallback.response(),
        }
    }

    fn on_branch_failure(&self, f: &BranchFailure<'_>, ctx: &mut PolicyCtx) -> FailureDecision {
        let failure = convert::wit_branch_failure(f, &ctx.data);
        let decided = self.run(
            "on-branch-failure",
            Checkout::OrCreate,
            |instance| {
                let hooks = instance.guest.switchyard_policy_hooks();
                hooks.call_on_branch_failure(&mut instance.store, &failure)
            },
            |decoder, raw| decoder.branch_failure(raw),
        );
        match decided {
            Some((decision, new_ctx)) => {
                replace_ctx(ctx, new_ctx);
                decision
            }
            None => self.fallback.branch_failure(),
        }
    }

    fn wants_dialog_hooks(&self) -> bool {
        self.dialog.is_some() && self.wants_dialog_hooks.load(Ordering::Relaxed)
    }

    /// Fire-and-forget, like `on-complete`.
    fn on_dialog_start(&self, call: &CallRecord, ctx: &mut PolicyCtx) {
        self.dialog_hook(true, call, ctx);
    }

    fn on_dialog_end(&self, call: &CallRecord, ctx: &mut PolicyCtx) {
        self.dialog_hook(false, call, ctx);
    }

    /// Fire-and-forget; shed (counted) when no idle instance is free, so
    /// bookkeeping never costs an instantiation on a busy node.
    fn on_complete(&self, summary: &CompletionSummary<'_>, ctx: &mut PolicyCtx) {
        let summary = convert::wit_summary(summary, &ctx.data);
        self.run(
            "on-complete",
            Checkout::IdleOnly,
            |instance| {
                let hooks = instance.guest.switchyard_policy_hooks();
                hooks.call_on_complete(&mut instance.store, &summary)
            },
            |_, ()| Ok(()),
        );
    }
}

fn replace_ctx(ctx: &mut PolicyCtx, new: Option<Vec<u8>>) {
    if let Some(data) = new {
        ctx.data = data;
    }
}

impl PolicyVersion {
    /// `on-dialog-start` (`start`) or `on-dialog-end`, fire-and-forget.
    fn dialog_hook(&self, start: bool, call: &CallRecord, ctx: &PolicyCtx) {
        if !self.wants_dialog_hooks() {
            return;
        }
        let dialog = super::dialog::wit_dialog(call, &ctx.data);
        let hook = if start {
            "on-dialog-start"
        } else {
            "on-dialog-end"
        };
        self.run(
            hook,
            Checkout::IdleOnly,
            |instance| match &instance.dialog {
                Some(guest) if start => guest.call_on_dialog_start(&mut instance.store, &dialog),
                Some(guest) => guest.call_on_dialog_end(&mut instance.store, &dialog),
                None => Ok(()),
            },
            |_, ()| Ok(()),
        );
    }

    /// The AOR's current bindings for `on-register`, from the store's cache
    /// (the registrar has not read the store yet at this point).
    fn stored_bindings(&self, aor: &str) -> Vec<switchyard_location::Binding> {
        let Some(location) = &self.ctx.location else {
            return Vec::new();
        };
        let Ok(aor) = switchyard_location::Aor::parse(aor) else {
            return Vec::new();
        };
        location.bindings(&self.ctx.tenant, &aor, SystemTime::now())
    }
}

impl std::fmt::Debug for PolicyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyVersion")
            .field("tenant", &self.ctx.tenant)
            .field("source", &self.ctx.source)
            .field("version", &self.ctx.version)
            .field("failure_mode", &self.fallback.mode)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "version_tests.rs"]
mod tests;
