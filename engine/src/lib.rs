//! Routing policies: the hook interface of the proxy core, and the tenants
//! that choose which policy runs.
//!
//! One trait of phases, in the spirit of Pingora's `ProxyHttp`: every hook has
//! a default that is the built-in behaviour, one decision goes in and one comes
//! out, and a per-transaction [`PolicyCtx`] travels through all of them. The
//! WebAssembly engine implements the same trait for each loaded module.
//!
//! Hooks, in call order for one transaction:
//!
//! | hook                | called                                                   | default                 |
//! |---------------------|----------------------------------------------------------|-------------------------|
//! | `on_register`       | REGISTER for one of our domains, before bindings are stored | [`RegisterDecision::Allow`] |
//! | `on_request`        | initial (out-of-dialog) request after §16.3 validation, before target selection | [`RequestAction::Continue`] |
//! | `on_response`       | every response received on a branch, before forwarding   | [`ResponseAction::Pass`] |
//! | `on_branch_failure` | all branches ended negatively and no targets remain      | [`FailureDecision::Fail`] |
//! | `on_complete`       | the transaction's final response was sent (may be shed)  | nothing                 |

pub mod bundled;
pub mod chain;
mod tenant_config;
pub mod tenants;
pub mod wasm;
pub mod watch;

pub use tenant_config::{ChainLinkConfig, SharedTenantsConfig, TenantPolicyConfig, TenantsConfig};

pub use switchyard_proto::policy::*;
