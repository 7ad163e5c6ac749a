//! Hostile test policy: `on-request` never returns. The host's epoch
//! deadline must cut it off and apply the tenant's failure mode.

use switchyard_policy::prelude::*;

/// Spins forever in `on_request`; every other hook is the default.
pub struct Spin;

impl Policy for Spin {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Spin)
    }

    fn on_request(&self, _req: &Request) -> RequestDecision {
        let mut n: u64 = 0;
        loop {
            // black_box keeps the loop from being folded away.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

switchyard_policy::export_policy!(Spin);
