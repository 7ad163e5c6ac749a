//! Tenants and their live policy versions: the [`PolicyResolver`] of a node.
//!
//! Each tenant has a slot holding its current version behind an
//! [`ArcSwap`]. A transaction takes one snapshot (`policy_for`) when it
//! starts and keeps it for all of its hooks, so a swap never changes the
//! policy under an in-flight call: new transactions see the new version at
//! once, old ones finish on the version they started with, which is freed
//! when the last of them ends.
//!
//! A version is published only after the engine validated it (compile,
//! import check, instantiate, `init`, a smoke call); a refused module
//! leaves the running version in place.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;
use tracing::{info, warn};

use super::chain::Chain;
use super::wasm::{FailureMode, LoadError, LoadSpec, PolicyEngine, PolicyVersion};
use super::{DefaultPolicy, Policy, PolicyResolver, bundled};
use crate::{SharedTenantsConfig, TenantPolicyConfig, TenantsConfig};

/// Why a policy could not be loaded for a tenant.
#[derive(Debug, thiserror::Error)]
pub enum TenantLoadError {
    #[error("tenant {tenant}: cannot read {path}: {source}")]
    Read {
        tenant: String,
        path: String,
        source: std::io::Error,
    },
    #[error("tenant {tenant}: unknown built-in policy `{name}` (known: {known})")]
    UnknownBuiltin {
        tenant: String,
        name: String,
        known: String,
    },
    #[error("tenant {tenant}: {source}")]
    Refused { tenant: String, source: LoadError },
    #[error("tenant {tenant}: this node runs without the policy engine")]
    NoEngine { tenant: String },
    #[error("tenant {tenant}: the load was interrupted")]
    Interrupted { tenant: String },
}

/// What `switchyard policy list` shows for a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub tenant: String,
    /// `native` (built-in routing, no WebAssembly), a path or `builtin:<name>`.
    pub source: String,
    /// Short sha256 of the module; empty for native.
    pub version: String,
    /// Unix seconds.
    pub loaded_at: u64,
    pub failure_mode: String,
    pub calls: u64,
    pub failures: u64,
    pub quarantined: bool,
}

/// One published policy of a tenant.
struct Active {
    policy: Arc<dyn Policy>,
    version: Option<Arc<PolicyVersion>>,
    loaded_at: SystemTime,
}

struct Slot {
    current: ArcSwap<Active>,
    /// Serialises loads for the tenant so two swaps cannot interleave.
    loading: tokio::sync::Mutex<()>,
}

/// The node's tenants: domain mapping, per-tenant slots, the engine.
pub struct Tenants {
    engine: Option<Arc<PolicyEngine>>,
    config: SharedTenantsConfig,
    /// Tenant → slot. Tenants gain a slot on their first load; the map is
    /// copied on that (rare) change so lookups never take a lock.
    slots: ArcSwap<HashMap<String, Arc<Slot>>>,
    adding: Mutex<()>,
    native: Arc<Active>,
}

impl Tenants {
    /// Tenants with no engine: every tenant runs the built-in routing.
    pub fn native(config: TenantsConfig) -> Self {
        Tenants {
            engine: None,
            config: Arc::new(ArcSwap::from_pointee(config)),
            slots: ArcSwap::from_pointee(HashMap::new()),
            adding: Mutex::new(()),
            native: Arc::new(Active {
                policy: Arc::new(DefaultPolicy),
                version: None,
                loaded_at: SystemTime::now(),
            }),
        }
    }

    /// Loads every tenant policy of `config` through `engine`. Any refused
    /// module fails start-up (a node must not come up half-configured).
    /// `config` is shared with whatever else reads the tenant map (the
    /// policies' location view), so [`reconfigure`](Self::reconfigure)
    /// changes it for all of them.
    pub async fn start(
        config: SharedTenantsConfig,
        engine: Arc<PolicyEngine>,
    ) -> Result<Self, TenantLoadError> {
        let mut tenants = Tenants::native(TenantsConfig::clone(&config.load()));
        tenants.config = config;
        tenants.engine = Some(engine);
        let slots = tenants.config.load().slots();
        for (slot, policy) in slots {
            let source = ModuleSource::from_config(&policy.module);
            tenants.load(&slot, source).await?;
        }
        Ok(tenants)
    }

    pub fn engine(&self) -> Option<&Arc<PolicyEngine>> {
        self.engine.as_ref()
    }

    /// The tenant settings in force.
    pub fn config(&self) -> Arc<TenantsConfig> {
        self.config.load_full()
    }

    /// Validates `source` for `tenant` (or a chain link, `tenant/link`) and
    /// publishes it. Returns the time from the call to the moment new
    /// transactions use the new version.
    pub async fn load(
        &self,
        tenant: &str,
        source: ModuleSource,
    ) -> Result<(TenantStatus, std::time::Duration), TenantLoadError> {
        let started = Instant::now();
        let settings = self.config.load().policy_of(tenant);
        let slot = self.slot(tenant);
        let _serial = slot.loading.lock().await;
        let version = self.prepare(tenant, source, settings.as_ref()).await?;
        let active = self.publish(tenant, &slot, version);
        Ok((status(tenant, &active), started.elapsed()))
    }

    /// Applies a new tenant configuration: every configured policy whose
    /// settings changed, or whose module is a file (it may have been
    /// rewritten), is validated first; only when all of them pass are they
    /// published together with the new domain map, and tenants no longer
    /// configured go back to the built-in routing. On any refusal nothing
    /// changes. Returns the tenants whose policy changed.
    pub async fn reconfigure(&self, new: TenantsConfig) -> Result<Vec<String>, TenantLoadError> {
        let old = self.config.load_full();
        let (old_slots, new_slots) = (old.slots(), new.slots());
        let mut prepared = Vec::new();
        for (slot, policy) in &new_slots {
            let unchanged = old_slots.iter().any(|(s, p)| s == slot && p == policy);
            if unchanged && policy.module.starts_with("builtin:") {
                continue;
            }
            let source = ModuleSource::from_config(&policy.module);
            let version = self.prepare(slot, source, Some(policy)).await?;
            let current = self.slots.load().get(slot).and_then(|s| {
                let active = s.current.load();
                active.version.as_ref().map(|v| v.short_hash().to_owned())
            });
            if unchanged && current.as_deref() == Some(version.short_hash()) {
                continue;
            }
            prepared.push((slot.clone(), version));
        }
        let mut changed = Vec::new();
        for (slot_name, version) in prepared {
            let slot = self.slot(&slot_name);
            let _serial = slot.loading.lock().await;
            self.publish(&slot_name, &slot, version);
            changed.push(slot_name);
        }
        for (slot_name, _) in &old_slots {
            if !new_slots.iter().any(|(s, _)| s == slot_name)
                && let Some(slot) = self.slots.load().get(slot_name)
            {
                slot.current.store(self.native.clone());
                info!(slot = %slot_name, "policy removed from the configuration: built-in routing");
                changed.push(slot_name.clone());
            }
        }
        self.config.store(Arc::new(new));
        Ok(changed)
    }

    /// Compiles and checks a version without publishing it.
    async fn prepare(
        &self,
        tenant: &str,
        source: ModuleSource,
        settings: Option<&TenantPolicyConfig>,
    ) -> Result<Arc<PolicyVersion>, TenantLoadError> {
        let Some(engine) = self.engine.clone() else {
            return Err(TenantLoadError::NoEngine {
                tenant: tenant.into(),
            });
        };
        let (label, bytes) = source.read(tenant)?;
        let spec = LoadSpec {
            // A chain link (`acme/pbx`) runs as its tenant: the same
            // location view, kv store and metrics as the tenant's others.
            tenant: tenant.split('/').next().unwrap_or(tenant).to_string(),
            source: label,
            bytes,
            config_json: settings.map_or_else(|| "{}".into(), |p| p.config_json()),
            failure: settings.map(|p| p.failure).unwrap_or_default(),
        };
        tokio::task::spawn_blocking(move || engine.load(spec))
            .await
            .map_err(|_| TenantLoadError::Interrupted {
                tenant: tenant.into(),
            })?
            .map_err(|source| TenantLoadError::Refused {
                tenant: tenant.into(),
                source,
            })
    }

    /// Makes `version` the one new transactions of `tenant` get.
    fn publish(&self, tenant: &str, slot: &Slot, version: Arc<PolicyVersion>) -> Arc<Active> {
        let active = Arc::new(Active {
            policy: version.clone(),
            version: Some(version.clone()),
            loaded_at: SystemTime::now(),
        });
        let previous = slot.current.swap(active.clone());
        info!(
            tenant,
            source = version.source(),
            version = version.short_hash(),
            previous = previous
                .version
                .as_ref()
                .map_or("native", |v| v.short_hash()),
            "policy published"
        );
        active
    }

    /// Tenants running a WebAssembly policy (alone or in a chain), whose
    /// AORs a remote store's read cache keeps warm for `location.lookup`:
    /// one filter per tenant. A tenant whose filter can match nothing (no
    /// domain of its own) is left out.
    pub fn prefetch_filters(&self) -> Vec<switchyard_location::AorFilter> {
        let config = self.config.load();
        let running: std::collections::BTreeSet<String> = self
            .slots
            .load()
            .iter()
            .filter(|(_, slot)| slot.current.load().version.is_some())
            .map(|(name, _)| name.split('/').next().unwrap_or(name).to_owned())
            .collect();
        running
            .iter()
            .filter(|tenant| {
                **tenant == config.default || config.domains.values().any(|t| t == *tenant)
            })
            .map(|tenant| config.aor_filter(tenant))
            .collect()
    }

    /// Every tenant that has a slot, plus the default tenant.
    pub fn list(&self) -> Vec<TenantStatus> {
        let slots = self.slots.load();
        let mut out: Vec<TenantStatus> = slots
            .iter()
            .map(|(t, slot)| status(t, &slot.current.load()))
            .collect();
        let default = &self.config.load().default;
        if !slots.contains_key(default) {
            out.push(status(default, &self.native));
        }
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    fn slot(&self, tenant: &str) -> Arc<Slot> {
        if let Some(slot) = self.slots.load().get(tenant) {
            return slot.clone();
        }
        let _adding = self.adding.lock();
        let mut map = HashMap::clone(&self.slots.load());
        let slot = map
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    current: ArcSwap::new(self.native.clone()),
                    loading: tokio::sync::Mutex::new(()),
                })
            })
            .clone();
        self.slots.store(Arc::new(map));
        slot
    }
}

impl PolicyResolver for Tenants {
    /// The tenant's policy, or its chain composed of each link's current
    /// version (one allocation per transaction, chained tenants only).
    fn policy_for(&self, tenant: &str) -> Arc<dyn Policy> {
        let slots = self.slots.load();
        let config = self.config.load();
        match config.chains.get(tenant) {
            Some(links) => Arc::new(Chain::new(
                links
                    .iter()
                    .map(|link| {
                        slots.get(&format!("{tenant}/{}", link.name)).map_or_else(
                            || self.native.policy.clone(),
                            |s| s.current.load().policy.clone(),
                        )
                    })
                    .collect(),
            )),
            None => slots.get(tenant).map_or_else(
                || self.native.policy.clone(),
                |s| s.current.load().policy.clone(),
            ),
        }
    }
}

fn status(tenant: &str, active: &Active) -> TenantStatus {
    let loaded_at = active
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match &active.version {
        None => TenantStatus {
            tenant: tenant.into(),
            source: "native".into(),
            version: String::new(),
            loaded_at,
            failure_mode: FailureMode::default().as_str().into(),
            calls: 0,
            failures: 0,
            quarantined: false,
        },
        Some(v) => {
            let info = v.info();
            TenantStatus {
                tenant: tenant.into(),
                source: info.source.clone(),
                version: info.short_hash().into(),
                loaded_at,
                failure_mode: info.failure_mode.as_str().into(),
                calls: info.calls,
                failures: info.total_failures(),
                quarantined: info.quarantined,
            }
        }
    }
}

/// Where a policy module comes from.
#[derive(Debug, Clone)]
pub enum ModuleSource {
    /// Shipped inside the binary (`builtin:<name>`).
    Builtin(String),
    File(std::path::PathBuf),
    /// Bytes received by the admin endpoint, with a label for listings.
    Bytes {
        label: String,
        bytes: Vec<u8>,
    },
}

impl ModuleSource {
    /// `builtin:<name>` or a path.
    pub fn from_config(module: &str) -> Self {
        match module.strip_prefix("builtin:") {
            Some(name) => ModuleSource::Builtin(name.to_string()),
            None => ModuleSource::File(module.into()),
        }
    }

    fn read(self, tenant: &str) -> Result<(String, Arc<[u8]>), TenantLoadError> {
        match self {
            ModuleSource::Builtin(name) => match bundled::module(&name) {
                Some(bytes) => Ok((format!("builtin:{name}"), bytes.into())),
                None => Err(TenantLoadError::UnknownBuiltin {
                    tenant: tenant.into(),
                    name,
                    known: bundled::NAMES.join(", "),
                }),
            },
            ModuleSource::File(path) => read_file(tenant, &path),
            ModuleSource::Bytes { label, bytes } => Ok((label, bytes.into())),
        }
    }
}

fn read_file(tenant: &str, path: &Path) -> Result<(String, Arc<[u8]>), TenantLoadError> {
    let bytes = std::fs::read(path).map_err(|source| TenantLoadError::Read {
        tenant: tenant.into(),
        path: path.display().to_string(),
        source,
    })?;
    Ok((path.display().to_string(), bytes.into()))
}

/// Logs a refused load the way operators need it: tenant, source, reason.
pub fn log_refused(error: &TenantLoadError) {
    warn!(%error, "policy refused; the running version stays");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChainLinkConfig;
    use crate::wasm::testing;

    fn link(name: &str, module: &str) -> ChainLinkConfig {
        ChainLinkConfig {
            name: name.into(),
            module: module.into(),
            failure: FailureMode::FailClosed,
            config: toml::Table::new(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_swaps_only_the_chain_links_that_changed() {
        let mut config = TenantsConfig::default();
        let chain = vec![
            link("limits", "builtin:default"),
            link("plan", "builtin:default"),
        ];
        config.chains.insert("acme".into(), chain.clone());
        let shared = Arc::new(ArcSwap::from_pointee(config.clone()));
        let engine = Arc::new(testing::engine_with(testing::config()));
        let tenants = Tenants::start(shared, engine).await.unwrap();
        let listed: Vec<String> = tenants.list().into_iter().map(|t| t.tenant).collect();
        assert!(listed.contains(&"acme/limits".into()) && listed.contains(&"acme/plan".into()));

        let mut changed = config.clone();
        changed.chains.insert(
            "acme".into(),
            vec![link("limits", "builtin:rate-limit"), chain[1].clone()],
        );
        assert_eq!(
            tenants.reconfigure(changed.clone()).await.unwrap(),
            ["acme/limits"]
        );
        assert_eq!(
            tenants.reconfigure(changed).await.unwrap(),
            Vec::<String>::new()
        );

        // Without the chain the tenant is back to the built-in routing.
        let removed = tenants.reconfigure(TenantsConfig::default()).await.unwrap();
        assert_eq!(removed, ["acme/limits", "acme/plan"]);
        assert!(tenants.policy_for("acme").is_default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tenants_running_a_policy_are_prefetched() {
        let mut config = TenantsConfig::default();
        config.domains.insert("acme.test".into(), "acme".into());
        config.domains.insert("globex.test".into(), "globex".into());
        config
            .chains
            .insert("acme".into(), vec![link("plan", "builtin:default")]);
        // A policy for a tenant with no domain of its own: nothing to warm.
        config.policies.insert(
            "nowhere".into(),
            TenantPolicyConfig {
                module: "builtin:default".into(),
                failure: FailureMode::FailClosed,
                config: toml::Table::new(),
            },
        );
        let shared = Arc::new(ArcSwap::from_pointee(config));
        let engine = Arc::new(testing::engine_with(testing::config()));
        let tenants = Tenants::start(shared, engine).await.unwrap();
        let filters = tenants.prefetch_filters();
        assert_eq!(filters.len(), 1, "{filters:?}");
        assert_eq!(filters[0].domains, ["acme.test"]);
        tenants.reconfigure(TenantsConfig::default()).await.unwrap();
        assert!(tenants.prefetch_filters().is_empty());
    }
}
