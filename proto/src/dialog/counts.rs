//! The dialog layer's counts: this node's calls per tenant and per user,
//! the other nodes' shares read from the store, and this node's shares to
//! publish (see the parent module's "Counts").

use std::collections::{BTreeMap, HashMap};

use super::{Call, Calls, TENANT_SHARE, TRANSIT, USER_SHARE_PREFIX};

/// One tenant's calls on this node, and per user.
#[derive(Debug, Default)]
pub(super) struct TenantCounts {
    calls: u32,
    users: HashMap<Box<str>, u32>,
}

impl Calls {
    /// Adds `delta` to the counts of a call's tenant and users.
    pub(super) fn count(&mut self, call: &Call, delta: i32) {
        if call.users == TRANSIT {
            return;
        }
        let [_, _, caller, callee] = call.parts();
        let counts = self.local.entry(call.tenant.clone()).or_default();
        counts.calls = counts.calls.saturating_add_signed(delta);
        for (bit, aor) in [(1, caller), (2, callee)] {
            if call.users & bit == 0 {
                continue;
            }
            let n = counts.users.entry(aor.into()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                counts.users.remove(aor);
            }
        }
        if counts.calls == 0 {
            self.local.remove(&call.tenant);
        }
    }

    /// The tenant's calls across the cluster: ours plus the others' last
    /// published shares.
    pub fn tenant_calls(&self, tenant: &str) -> i64 {
        let ours = self.local.get(tenant).map_or(0, |c| c.calls);
        i64::from(ours) + self.remote_share(tenant, TENANT_SHARE)
    }

    /// The calls `aor` (`user@domain`) is in across the cluster.
    pub fn user_calls(&self, tenant: &str, aor: &str) -> i64 {
        let ours = self
            .local
            .get(tenant)
            .and_then(|c| c.users.get(aor))
            .copied()
            .unwrap_or(0);
        let name = format!("{USER_SHARE_PREFIX}{aor}");
        i64::from(ours) + self.remote_share(tenant, &name)
    }

    fn remote_share(&self, tenant: &str, name: &str) -> i64 {
        self.remote
            .get(tenant)
            .and_then(|s| s.get(name))
            .copied()
            .unwrap_or(0)
    }

    /// Tenants with calls here, for the node to publish (those it
    /// published before and are now at zero it publishes empty).
    pub fn tenants(&self) -> Vec<String> {
        self.local.keys().map(|t| t.to_string()).collect()
    }

    /// This node's shares of `tenant`'s counts, as published to the store.
    pub fn shares(&self, tenant: &str) -> Vec<(String, i64)> {
        let Some(counts) = self.local.get(tenant) else {
            return Vec::new();
        };
        let users = counts
            .users
            .iter()
            .map(|(aor, n)| (format!("{USER_SHARE_PREFIX}{aor}"), i64::from(*n)));
        std::iter::once((TENANT_SHARE.to_owned(), i64::from(counts.calls)))
            .chain(users)
            .collect()
    }

    /// Every tenant with calls here or elsewhere: (this node's calls, the
    /// cluster's as last known).
    pub fn counts(&self) -> BTreeMap<String, (u32, i64)> {
        let tenants = self
            .local
            .keys()
            .map(|t| t.as_ref())
            .chain(self.remote.keys().map(String::as_str));
        tenants
            .map(|t| {
                let ours = self.local.get(t).map_or(0, |c| c.calls);
                (t.to_owned(), (ours, self.tenant_calls(t)))
            })
            .collect()
    }

    /// The other nodes' shares of `tenant`, as last read from the store.
    pub fn set_remote(&mut self, tenant: &str, shares: HashMap<String, i64>) {
        if shares.is_empty() {
            self.remote.remove(tenant);
        } else {
            self.remote.insert(tenant.to_owned(), shares);
        }
    }
}
