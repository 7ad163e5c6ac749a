//! The smallest policy: every hook is the SDK's default (proceed, allow,
//! pass, fail). What `host/benches/policy_hook.rs` measures with it is the
//! engine's own cost per hook call: checkout, marshalling, the call, the
//! decision's conversion.

use switchyard_policy::prelude::*;

/// Proceeds on everything.
pub struct Trivial;

impl Policy for Trivial {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Trivial)
    }
}

switchyard_policy::export_policy!(Trivial);
