//! The conformance suite every [`LocationStore`] backend must pass.
//!
//! Run it for a backend with one line in a test module:
//!
//! ```ignore
//! switchyard_location::location_store_conformance!(async { EmbeddedStore::new() });
//! ```
//!
//! which expands to one `#[tokio::test]` per case below. Attributes written
//! before the factory are put on every test, e.g. a backend that needs a
//! server can add `#[ignore = "set SWITCHYARD_CASSANDRA"]` (or a `cfg_attr`)
//! so the cases show up as skipped rather than passed.
//!
//! The cases only use `now` arguments (no sleeps) anchored at the real clock
//! rounded to whole seconds, so TTL-based backends compute sane TTLs and
//! millisecond timestamp columns round-trip exactly. Every case uses AORs
//! unique to the run, so a backend may share one keyspace across cases
//! running in parallel.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "conformance_cases.rs"]
mod cases;
pub use cases::*;

use crate::{Aor, AorFilter, Binding, BindingKey, LocationStore};
use switchyard_proto::net::{Source, Transport};
use switchyard_proto::registrar::{ContactUpdate, ContactsUpdate, RegisterUpdate};

/// Expands to one `#[tokio::test]` per conformance case, each building a
/// fresh store with the given async factory expression.
#[macro_export]
macro_rules! location_store_conformance {
    // `attrs [#[ignore = "..."]] make` puts attributes on every case (the
    // keyword keeps rustc from reading the `#` as the start of `make`).
    (attrs [$(#[$attr:meta])*] $make:expr) => {
        $crate::location_store_conformance!(@all [$(#[$attr])*] $make);
    };
    (@all $attrs:tt $make:expr) => {
        $crate::location_store_conformance!(@cases $attrs $make;
            add_refresh_remove,
            wildcard_removes_all,
            expiry_follows_now,
            stale_cseq_is_rejected_atomically,
            new_call_id_replaces,
            multiple_contacts,
            instance_and_reg_id_identity,
            all_fields_round_trip,
            lookup_excludes_expired,
            purge_removes_only_due,
            fetch_changes_nothing,
            aors_are_isolated,
            concurrent_registers_keep_every_update,
            list_aors_filters_and_hides_expired,
        );
    };
    (@cases $attrs:tt $make:expr; $($case:ident),* $(,)?) => {
        $( $crate::location_store_conformance!(@case $attrs $make; $case); )*
    };
    (@case [$(#[$attr:meta])*] $make:expr; $case:ident) => {
        $(#[$attr])*
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store: ::std::sync::Arc<dyn $crate::LocationStore> =
                ::std::sync::Arc::new($make.await);
            $crate::conformance::$case(store).await;
        }
    };
    ($make:expr) => {
        $crate::location_store_conformance!(@all [] $make);
    };
}

/// How every case receives the backend under test.
pub type Store = Arc<dyn LocationStore>;

/// The real clock rounded down to a whole second.
pub fn base_time() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// An AOR no other case (or earlier run) uses.
pub fn unique_aor(case: &str) -> Aor {
    let nonce: u64 = rand::random();
    Aor::parse(&format!("{case}-{nonce:016x}@conformance.test")).expect("valid AOR")
}

pub use switchyard_proto::location::samples::*;
