//! Hostile test policy: `on-request` for an INVITE reserves 1 MiB blocks of linear memory
//! without bound. Each reservation is a `memory.grow`, so the host's memory
//! cap is reached within a few calls of the allocator (well inside the hook
//! deadline): `memory.grow` fails, the allocation error aborts, the instance
//! traps.

use switchyard_policy::prelude::*;

/// Size of each reservation.
const CHUNK: usize = 1 << 20;

/// Grows linear memory without bound in `on_request`.
pub struct MemoryBomb;

impl Policy for MemoryBomb {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(MemoryBomb)
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        // Only INVITEs: the host's load-time smoke call (an OPTIONS) must
        // pass, or the module would be refused before it could misbehave.
        if !req.is_invite() {
            return RequestDecision::proceed();
        }
        loop {
            // Reserved, not written: growing memory is what the cap counts,
            // and skipping the writes keeps the bomb fast.
            let chunk: Vec<u8> = Vec::with_capacity(CHUNK);
            std::mem::forget(std::hint::black_box(chunk));
        }
    }
}

switchyard_policy::export_policy!(MemoryBomb);
