//! Hostile test policy: `on-request` for an INVITE panics. With `panic = "abort"` the
//! SDK's panic hook logs the message through the host's `log` import
//! ("policy panicked: ...") and the instance traps.

use switchyard_policy::prelude::*;

/// Panics in `on_request`.
pub struct Panic;

impl Policy for Panic {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Panic)
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        // Only INVITEs: the host's load-time smoke call (an OPTIONS) must
        // pass, or the module would be refused before it could misbehave.
        if !req.is_invite() {
            return RequestDecision::proceed();
        }
        panic!(
            "test policy panics on purpose ({} {})",
            req.method(),
            req.request_uri_str()
        );
    }
}

switchyard_policy::export_policy!(Panic);
