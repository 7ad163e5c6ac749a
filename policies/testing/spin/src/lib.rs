//! Hostile test policy: `on-request` for an INVITE never returns. The host's epoch
//! deadline must cut it off and apply the tenant's failure mode.

use switchyard_policy::prelude::*;

/// Spins forever in `on_request`; every other hook is the default.
pub struct Spin;

impl Policy for Spin {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Spin)
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        // Only INVITEs: the host's load-time smoke call (an OPTIONS) must
        // pass, or the module would be refused before it could misbehave.
        if !req.is_invite() {
            return RequestDecision::proceed();
        }
        let mut n: u64 = 0;
        loop {
            // black_box keeps the loop from being folded away.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

switchyard_policy::export_policy!(Spin);
