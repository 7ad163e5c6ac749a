//! Hostile test policy: `on-request` for an INVITE executes the wasm `unreachable`
//! instruction (a trap without a Rust panic in between).

use switchyard_policy::prelude::*;

/// Traps in `on_request`.
pub struct Trap;

impl Policy for Trap {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Trap)
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        // Only INVITEs: the host's load-time smoke call (an OPTIONS) must
        // pass, or the module would be refused before it could misbehave.
        if !req.is_invite() {
            return RequestDecision::proceed();
        }
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        std::process::abort();
    }
}

switchyard_policy::export_policy!(Trap);
