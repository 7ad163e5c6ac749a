//! Hostile test policy: `on-request` panics. With `panic = "abort"` the
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
        panic!(
            "test policy panics on purpose ({} {})",
            req.method(),
            req.request_uri_str()
        );
    }
}

switchyard_policy::export_policy!(Panic);
