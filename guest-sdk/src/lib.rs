//! # switchyard-policy: write Switchyard routing policies in Rust
//!
//! A policy is a WebAssembly component (world `switchyard:policy/dialog-policy@0.1.2`,
//! see `wit/policy.wit`) that a Switchyard node calls at fixed points of a SIP
//! transaction. This crate wraps the generated bindings so that a policy is a
//! plain Rust type implementing [`Policy`], exported with [`export_policy!`]:
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_policy::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Settings {
//!     /// Callers (From user) that get 603 Decline.
//!     blocked: Vec<String>,
//! }
//!
//! struct Blocklist(Settings);
//!
//! impl Policy for Blocklist {
//!     fn init(config: Config) -> Result<Self, String> {
//!         Ok(Blocklist(config.parse()?))
//!     }
//!
//!     fn on_request(&self, req: &Request) -> RequestDecision {
//!         match req.from_user() {
//!             Some(user) if self.0.blocked.iter().any(|b| b == user) => {
//!                 switchyard_policy::metrics::counter("blocked_calls", 1);
//!                 RequestDecision::reply(603, "Decline")
//!             }
//!             _ => RequestDecision::proceed().with_header("X-Screened", "yes"),
//!         }
//!     }
//! }
//!
//! switchyard_policy::export_policy!(Blocklist);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` from a
//! `cdylib` crate and load the `.wasm` file into the node.
//!
//! ## The hooks, in call order
//!
//! | hook | input | default (what the proxy does without a policy) |
//! | --- | --- | --- |
//! | [`Policy::init`] | [`Config`] (the tenant's TOML table as JSON) | none: required |
//! | [`Policy::on_register`] | [`Register`] | [`RegisterDecision::allow`] |
//! | [`Policy::on_request`] | [`Request`] | [`RequestDecision::proceed`] |
//! | [`Policy::on_response`] | [`Response`] | [`ResponseDecision::pass`] |
//! | [`Policy::on_branch_failure`] | [`BranchFailure`] | [`FailureDecision::fail`] |
//! | [`Policy::on_complete`] | [`Summary`] | nothing |
//!
//! ## Cost
//!
//! The views hold the raw record the host passed in. The SIP message is
//! parsed with `switchyard-codec` only when a hook first asks for a header,
//! From/To or a parsed URI, so a hook that decides on the method or the
//! Request-URI alone stays in the sub-microsecond range.
//!
//! ## Host functions
//!
//! [`log`], [`metrics`], [`clock`], [`kv`] and [`location`] wrap the host
//! imports. On targets other than `wasm32` they talk to an in-process mock
//! ([`testing`]) so that a policy's logic can be unit-tested with a plain
//! `cargo test`.
//!
//! ## WASI imports
//!
//! Rust's `std` makes a `wasm32-wasip2` component import `wasi:cli`,
//! `wasi:io`, `wasi:clocks`, `wasi:filesystem` and `wasi:random`. The host
//! links the first four to functions that trap if called and provides
//! `wasi:random` (so `HashMap` works). Do not print, read files or read the
//! environment in a policy: those calls trap. This SDK never does; a panic is
//! reported through [`log`] before the instance aborts.

#![warn(missing_docs)]

/// The bindings `wit-bindgen` generates from `wit/policy.wit`.
///
/// The SDK re-exports what a policy needs; reach in here only for the raw
/// records (e.g. `bindings::exports::switchyard::policy::hooks::Request`).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "switchyard:policy/dialog-policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "switchyard_policy::bindings",
        additional_derives: [PartialEq],
    });
}

mod config;
mod decision;
mod host;
mod message;
mod views;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use config::Config;
pub use host::{caller, calls, clock, kv, location, log, metrics};
pub use message::Message;
pub use views::{BranchFailure, Cause, Register, Request, Response, Summary};

pub use switchyard_codec as codec;
pub use switchyard_codec::{Host, NameAddr, Scheme, Uri};

pub use bindings::exports::switchyard::policy::dialog_hooks::{Dialog, EndReason};
pub use bindings::exports::switchyard::policy::hooks::{
    FailureAction, FailureDecision, RegisterDecision, RegisterLimits, RequestAction,
    RequestDecision, ResponseAction, ResponseDecision,
};
pub use bindings::switchyard::policy::types::{
    Binding, Header, HeaderEdit, Reply, Source, Target, TargetGroup, Transport,
};

/// The address-of-record `sip:user@domain` (the form
/// [`location::lookup`] takes; the host compares domains case-insensitively).
pub fn aor(user: &str, domain: &str) -> String {
    format!("sip:{user}@{domain}")
}

/// Everything a policy usually needs: `use switchyard_policy::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Binding, BranchFailure, Cause, Config, FailureDecision, Policy, Register, RegisterDecision,
        RegisterLimits, Reply, Request, RequestDecision, Response, ResponseDecision, Summary,
        Target, TargetGroup, export_policy,
    };
}

/// A routing policy: one method per hook, each with the proxy's default
/// behaviour, so a policy overrides only what it changes.
///
/// One value is created per instance by [`Policy::init`] and reused for
/// every hook call of that instance. Instances are recycled at any time, so
/// state that must outlive a call belongs in the per-transaction `ctx`
/// (see [`RequestDecision::with_ctx`]) or in [`kv`].
pub trait Policy: Sized + 'static {
    /// Builds the policy from the tenant's configuration, once per instance.
    /// An error refuses the load; the message is shown to the operator.
    fn init(config: Config) -> Result<Self, String>;

    /// An initial (out-of-dialog) request. Default: [`RequestDecision::proceed`].
    fn on_request(&self, req: &Request) -> RequestDecision {
        let _ = req;
        RequestDecision::proceed()
    }

    /// A REGISTER, before the registrar stores anything.
    /// Default: [`RegisterDecision::allow`].
    fn on_register(&self, reg: &Register) -> RegisterDecision {
        let _ = reg;
        RegisterDecision::allow()
    }

    /// A response received on a branch, before it is forwarded.
    /// Default: [`ResponseDecision::pass`].
    fn on_response(&self, resp: &Response) -> ResponseDecision {
        let _ = resp;
        ResponseDecision::pass()
    }

    /// Every branch of the current targets failed. Default:
    /// [`FailureDecision::fail`] (the best response goes upstream).
    fn on_branch_failure(&self, failure: &BranchFailure) -> FailureDecision {
        let _ = failure;
        FailureDecision::fail()
    }

    /// The transaction is over. Fire-and-forget; calls may be shed under load.
    fn on_complete(&self, summary: &Summary) {
        let _ = summary;
    }

    /// Set to `true` to get [`Policy::on_dialog_start`] and
    /// [`Policy::on_dialog_end`]; the node does not call them otherwise
    /// (WIT 0.1.2, `dialog-hooks`).
    const DIALOG_HOOKS: bool = false;

    /// A call this policy routed was answered: its 2xx went upstream.
    /// `dialog.ctx` is the INVITE transaction's ctx at that moment.
    fn on_dialog_start(&self, dialog: &Dialog) {
        let _ = dialog;
    }

    /// An answered call this policy routed has ended (BYE from either
    /// side, maximum duration, session expiry): `dialog` is its CDR.
    fn on_dialog_end(&self, dialog: &Dialog) {
        let _ = dialog;
    }
}

/// Exports a [`Policy`] type as the component's `hooks`.
///
/// Use it once per policy crate, at the crate root:
///
/// ```ignore
/// switchyard_policy::export_policy!(MyPolicy);
/// ```
///
/// On targets other than `wasm32` it expands to nothing, so the crate's
/// unit tests build natively and call the policy's methods directly.
#[macro_export]
macro_rules! export_policy {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: ::core::cell::RefCell<::core::option::Option<$ty>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct Export;

            impl $crate::__private::Guest for Export {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::init(&INSTANCE, config)
                }
                fn on_request(req: $crate::__private::RawRequest) -> $crate::RequestDecision {
                    $crate::__private::on_request(&INSTANCE, req)
                }
                fn on_register(reg: $crate::__private::RawRegister) -> $crate::RegisterDecision {
                    $crate::__private::on_register(&INSTANCE, reg)
                }
                fn on_response(resp: $crate::__private::RawResponse) -> $crate::ResponseDecision {
                    $crate::__private::on_response(&INSTANCE, resp)
                }
                fn on_branch_failure(
                    failure: $crate::__private::RawBranchFailure,
                ) -> $crate::FailureDecision {
                    $crate::__private::on_branch_failure(&INSTANCE, failure)
                }
                fn on_complete(summary: $crate::__private::RawSummary) {
                    $crate::__private::on_complete(&INSTANCE, summary)
                }
            }

            impl $crate::__private::DialogGuest for Export {
                fn wants_dialog_hooks() -> bool {
                    <$ty as $crate::Policy>::DIALOG_HOOKS
                }
                fn on_dialog_start(dialog: $crate::Dialog) {
                    $crate::__private::on_dialog(&INSTANCE, dialog, true)
                }
                fn on_dialog_end(dialog: $crate::Dialog) {
                    $crate::__private::on_dialog(&INSTANCE, dialog, false)
                }
            }

    $crate::bindings::__export_policy_world!(Export with_types_in $crate::bindings);
        };
    };
}

/// Glue used by [`export_policy!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::cell::RefCell;
    use std::thread::LocalKey;

    pub use crate::bindings::exports::switchyard::policy::dialog_hooks::Guest as DialogGuest;
    pub use crate::bindings::exports::switchyard::policy::hooks::{
        BranchFailure as RawBranchFailure, Guest, Register as RawRegister, Request as RawRequest,
        Response as RawResponse, Summary as RawSummary,
    };
    use crate::{
        BranchFailure, Config, FailureDecision, Policy, Register, RegisterDecision, Request,
        RequestDecision, Response, ResponseDecision, Summary,
    };

    /// Where the instance's policy value lives (wasm instances are single-threaded).
    pub type Slot<P> = LocalKey<RefCell<Option<P>>>;

    pub fn init<P: Policy>(slot: &'static Slot<P>, config: String) -> Result<(), String> {
        install_panic_hook();
        let policy = P::init(Config::new(config))?;
        slot.set(Some(policy));
        Ok(())
    }

    fn with<P: Policy, R>(slot: &'static Slot<P>, f: impl FnOnce(&P) -> R) -> R {
        slot.with_borrow(|policy| match policy {
            Some(policy) => f(policy),
            None => panic!("switchyard-policy: hook called before init"),
        })
    }

    pub fn on_request<P: Policy>(slot: &'static Slot<P>, raw: RawRequest) -> RequestDecision {
        let req = Request::from_raw(raw);
        with(slot, |p| p.on_request(&req))
    }

    pub fn on_register<P: Policy>(slot: &'static Slot<P>, raw: RawRegister) -> RegisterDecision {
        let reg = Register::from_raw(raw);
        with(slot, |p| p.on_register(&reg))
    }

    pub fn on_response<P: Policy>(slot: &'static Slot<P>, raw: RawResponse) -> ResponseDecision {
        let resp = Response::from_raw(raw);
        with(slot, |p| p.on_response(&resp))
    }

    pub fn on_branch_failure<P: Policy>(
        slot: &'static Slot<P>,
        raw: RawBranchFailure,
    ) -> FailureDecision {
        let failure = BranchFailure::from_raw(raw);
        with(slot, |p| p.on_branch_failure(&failure))
    }

    pub fn on_complete<P: Policy>(slot: &'static Slot<P>, raw: RawSummary) {
        let summary = Summary::from_raw(raw);
        with(slot, |p| p.on_complete(&summary))
    }

    pub fn on_dialog<P: Policy>(slot: &'static Slot<P>, dialog: crate::Dialog, start: bool) {
        with(slot, |p| match start {
            true => p.on_dialog_start(&dialog),
            false => p.on_dialog_end(&dialog),
        })
    }

    /// std's default hook writes to stderr, which the host does not grant;
    /// send the message to the proxy's log instead, then abort (a trap).
    fn install_panic_hook() {
        #[cfg(target_arch = "wasm32")]
        std::panic::set_hook(Box::new(|info| {
            crate::log::error(&format!("policy panicked: {info}"));
        }));
    }
}
