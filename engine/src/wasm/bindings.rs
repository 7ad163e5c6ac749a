//! Host bindings generated from `wit/policy.wit` (world `switchyard:policy/policy`).
//!
//! Nothing here is written by hand: the WIT is the single source of truth.
//! Types are generated owning (`ownership: Owning`, the default). Borrowing
//! parameters would spare a copy of the message per call, but wasmtime 48's
//! generator emits an invalid alias (`type Header = &'a ...`) for a type the
//! `hooks` interface `use`s without mentioning it; the engine instead keeps
//! one owned request per instance and refills it in place, so a call copies
//! the bytes but allocates nothing. Imports are not trappable: every host
//! function answers, so a guest can only fail by its own doing.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
});

pub(crate) use self::switchyard::policy::{
    caller, calls, clock, kv, location, log, metrics, types,
};
pub(crate) use exports::switchyard::policy::hooks;

/// The optional `dialog-hooks` export (0.1.2), found by name in a
/// component that has it (world `dialog-policy`): world `dialog-exports`
/// holds that interface alone.
pub(crate) mod dialog {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "dialog-exports",
    });

    pub(crate) use exports::switchyard::policy::dialog_hooks::{
        Dialog, EndReason, Guest, GuestIndices,
    };
}
