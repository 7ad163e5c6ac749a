//! One instance of a policy: its own `Store` (memory, limits, deadline) and
//! the handle to its exports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::Store;

use super::EngineConfig;
use super::bindings::{self, PolicyPre};
use super::convert::Scratch;
use super::failure::{self, FailureKind};
use super::host_api::{GuestContext, HostState};

pub(crate) struct Instance {
    pub store: Store<HostState>,
    pub guest: bindings::Policy,
    /// The `dialog-hooks` export, when the version has it and wants them.
    pub dialog: Option<bindings::dialog::Guest>,
    /// Hook calls served, for recycling after `instance_max_calls`.
    pub calls: u64,
    /// Request/response records refilled for each call.
    pub scratch: Scratch,
    /// This instance's place in the version's count of live instances.
    _slot: Slot,
}

/// Why a new instance could not be made.
#[derive(Debug)]
pub(crate) enum InstantiateError {
    /// The engine's instance pool is full (a node-wide limit, not the
    /// policy's fault).
    PoolExhausted,
    /// `init` returned an error.
    Init(String),
    /// Instantiation or `init` trapped, timed out or hit the memory cap.
    Failed {
        kind: FailureKind,
        error: wasmtime::Error,
    },
}

impl Instance {
    /// Instantiates in a fresh store and runs `init(config)`, both within
    /// `init_deadline_ms`. The slot is released when the instance, or this failed
    /// attempt, is dropped.
    pub fn create(
        config: &EngineConfig,
        pre: &PolicyPre<HostState>,
        dialog: Option<&bindings::dialog::GuestIndices>,
        ctx: &Arc<GuestContext>,
        policy_config: &str,
        slot: Slot,
    ) -> Result<Instance, InstantiateError> {
        let mut store = Store::new(
            pre.engine(),
            HostState::new(ctx.clone(), config.memory_cap_bytes(), config.tick()),
        );
        store.limiter(|state| &mut state.memory);
        // At each tick the call goes on, one tick at a time, while its
        // thread has CPU budget left (`cpu_deadline`); else it traps.
        store.epoch_deadline_callback(|mut ctx| {
            if ctx.data_mut().deadline.may_continue() {
                Ok(wasmtime::UpdateDeadline::Continue(1))
            } else {
                Err(wasmtime::Trap::Interrupt.into())
            }
        });
        // A new store's deadline is 0 ticks: it would trap on first entry.
        let ticks = config.init_deadline_ticks();
        store.data_mut().deadline =
            super::cpu_deadline::CpuDeadline::start(config.tick() * ticks as u32);
        store.set_epoch_deadline(1);
        let failed = |store: &Store<HostState>, error: wasmtime::Error| {
            if error.is::<wasmtime::PoolConcurrencyLimitError>() {
                return InstantiateError::PoolExhausted;
            }
            let kind = failure::classify(&error, store.data().memory.hit);
            InstantiateError::Failed { kind, error }
        };
        let instantiated = pre
            .instance_pre()
            .instantiate(&mut store)
            .and_then(|instance| {
                let guest = bindings::Policy::new(&mut store, &instance)?;
                let dialog = dialog.map(|d| d.load(&mut store, &instance)).transpose()?;
                Ok((guest, dialog))
            });
        let (guest, dialog) = match instantiated {
            Ok(loaded) => loaded,
            Err(error) => return Err(failed(&store, error)),
        };
        match guest
            .switchyard_policy_hooks()
            .call_init(&mut store, policy_config)
        {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(InstantiateError::Init(message)),
            Err(error) => return Err(failed(&store, error)),
        }
        Ok(Instance {
            store,
            guest,
            dialog,
            calls: 0,
            scratch: Scratch::new(),
            _slot: slot,
        })
    }

    /// Arms the store for one hook call: a fresh deadline (each call gets the
    /// full budget, checked from the next tick on) and a cleared
    /// out-of-memory flag.
    pub fn prepare(&mut self, deadline_ticks: u64) {
        self.store.set_epoch_deadline(1);
        let data = self.store.data_mut();
        data.memory.hit = false;
        data.deadline = super::cpu_deadline::CpuDeadline::start(data.tick * deadline_ticks as u32);
    }
}

/// One reserved unit of a version's instance budget, given back on drop.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Reserves a slot if fewer than `max` are taken.
    pub fn reserve(live: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(live.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
