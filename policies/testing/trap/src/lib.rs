//! Hostile test policy: `on-request` executes the wasm `unreachable`
//! instruction (a trap without a Rust panic in between).

use switchyard_policy::prelude::*;

/// Traps in `on_request`.
pub struct Trap;

impl Policy for Trap {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Trap)
    }

    fn on_request(&self, _req: &Request) -> RequestDecision {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        std::process::abort();
    }
}

switchyard_policy::export_policy!(Trap);
