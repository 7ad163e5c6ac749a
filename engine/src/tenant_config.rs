//! `[tenants]`: which tenant a SIP domain belongs to and which routing
//! policy each tenant runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::wasm::FailureMode;
use switchyard_proto::cluster::ContactRewrite;

/// Domain → tenant mapping and per-tenant policies. Unknown domains
/// belong to `default`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsConfig {
    pub default: String,
    /// Domain (case-insensitive) → tenant name.
    pub domains: BTreeMap<String, String>,
    /// Tenant name → its policy. A tenant without an entry runs the
    /// built-in routing (registrar + location), natively.
    pub policies: BTreeMap<String, TenantPolicyConfig>,
    /// Tenant name → an ordered chain of policies run as one
    /// (`engine/src/chain.rs`), instead of a single `policies` entry.
    /// Each link can be swapped alone as `<tenant>/<name>`.
    pub chains: BTreeMap<String, Vec<ChainLinkConfig>>,
    /// A directory watched for `<tenant>.wasm` files: writing one loads
    /// it as that tenant's new policy version (validated first; a bad
    /// file is refused and logged, the running version stays).
    pub watch_dir: Option<PathBuf>,
    /// Tenant name → when the edge rewrites its UAs' Contacts (`off`,
    /// `nat`, `always`); others follow `cluster.contact_rewrite`.
    pub contact_rewrite: BTreeMap<String, ContactRewrite>,
    /// Tenant name → sources (CIDRs) trusted for that tenant: its PBX,
    /// media servers, carrier gateways. A request from one whose From is
    /// in the tenant's domains is not challenged and may be routed
    /// anywhere, like `[auth] trusted` but for that tenant only.
    pub trusted: BTreeMap<String, Vec<ipnet::IpNet>>,
    /// Tenants whose users may register AORs other than their own
    /// (RFC 3261 §10.3 step 3: a receptionist's phone, a PBX registering
    /// its extensions) when the tenant's policy allows it: `on-register`
    /// sees the proof's user in `caller.current-origin` and refuses what
    /// it does not allow. Elsewhere such a REGISTER is 403.
    pub third_party_register: Vec<String>,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        TenantsConfig {
            default: "default".into(),
            domains: BTreeMap::new(),
            policies: BTreeMap::new(),
            chains: BTreeMap::new(),
            watch_dir: None,
            contact_rewrite: BTreeMap::new(),
            trusted: BTreeMap::new(),
            third_party_register: Vec::new(),
        }
    }
}

/// `[tenants.policies.<tenant>]`
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicyConfig {
    /// `builtin:<name>` for a policy shipped inside the binary (`default`,
    /// `hosted-pbx`, `lcr`, `rate-limit`), else a path to a `.wasm`
    /// component (relative paths: from the working directory).
    pub module: String,
    /// What a failing policy (trap, deadline, memory cap, bad decision)
    /// means for the call.
    #[serde(default)]
    pub failure: FailureMode,
    /// Passed to the policy's `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
}

impl TenantPolicyConfig {
    /// The `config` table as the JSON text `init` receives.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

/// `[[tenants.chains.<tenant>]]`: one link of a policy chain.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLinkConfig {
    /// The link's name: `<tenant>/<name>` addresses it (`policy load
    /// --link`, `/policies/<tenant>?link=<name>`, listings).
    pub name: String,
    /// As in `[tenants.policies.<tenant>]`.
    pub module: String,
    #[serde(default)]
    pub failure: FailureMode,
    #[serde(default)]
    pub config: toml::Table,
}

impl ChainLinkConfig {
    /// The link as a single policy's settings.
    pub fn policy(&self) -> TenantPolicyConfig {
        TenantPolicyConfig {
            module: self.module.clone(),
            failure: self.failure,
            config: self.config.clone(),
        }
    }
}

impl TenantsConfig {
    /// The settings of a policy slot: a tenant (`acme`) or a chain link
    /// (`acme/pbx`).
    pub fn policy_of(&self, slot: &str) -> Option<TenantPolicyConfig> {
        match slot.split_once('/') {
            Some((tenant, link)) => self
                .chains
                .get(tenant)?
                .iter()
                .find(|l| l.name == link)
                .map(ChainLinkConfig::policy),
            None => self.policies.get(slot).cloned(),
        }
    }

    /// Every configured policy slot with its settings: tenants, then the
    /// links of every chain as `tenant/link`.
    pub fn slots(&self) -> Vec<(String, TenantPolicyConfig)> {
        let single = self.policies.iter().map(|(t, p)| (t.clone(), p.clone()));
        let links = self.chains.iter().flat_map(|(tenant, links)| {
            links
                .iter()
                .map(move |l| (format!("{tenant}/{}", l.name), l.policy()))
        });
        single.chain(links).collect()
    }

    /// Refuses a tenant with both a policy and a chain, an empty chain, and
    /// link names that are empty, repeated or contain `/`.
    pub fn validate(&self) -> Result<(), String> {
        for (tenant, links) in &self.chains {
            if self.policies.contains_key(tenant) {
                return Err(format!(
                    "key `tenants.chains.{tenant}`: the tenant also has a `tenants.policies` entry; give it one or the other"
                ));
            }
            if links.is_empty() {
                return Err(format!(
                    "key `tenants.chains.{tenant}`: a chain needs at least one link"
                ));
            }
            for (i, link) in links.iter().enumerate() {
                if link.name.is_empty() || link.name.contains('/') {
                    return Err(format!(
                        "key `tenants.chains.{tenant}`: link name {:?} must be non-empty and without '/'",
                        link.name
                    ));
                }
                if links[..i].iter().any(|l| l.name == link.name) {
                    return Err(format!(
                        "key `tenants.chains.{tenant}`: two links are named {:?}",
                        link.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `source` is one of `tenant`'s trusted peers.
    pub fn trusts(&self, tenant: &str, source: std::net::IpAddr) -> bool {
        self.trusted
            .get(tenant)
            .is_some_and(|nets| nets.iter().any(|n| n.contains(&source)))
    }

    /// Which AORs are `tenant`'s: those of its domains, or for the default
    /// tenant every domain no other tenant claims.
    pub fn aor_filter(&self, tenant: &str) -> switchyard_location::AorFilter {
        let others = |mine: bool| {
            self.domains
                .iter()
                .filter(|(_, t)| (t.as_str() == tenant) == mine)
                .map(|(d, _)| d.clone())
                .collect()
        };
        if tenant == self.default {
            switchyard_location::AorFilter {
                excluded: others(false),
                ..Default::default()
            }
        } else {
            switchyard_location::AorFilter {
                domains: others(true),
                ..Default::default()
            }
        }
    }

    /// The tenant a domain belongs to.
    pub fn tenant_of<'a>(&'a self, domain: &str) -> &'a str {
        self.domains
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map_or(self.default.as_str(), |(_, t)| t.as_str())
    }
}

/// The tenant settings of a running node, shared by everything that reads
/// them (tenants, the policies' location view) and swapped whole by a
/// configuration reload.
pub type SharedTenantsConfig = std::sync::Arc<arc_swap::ArcSwap<TenantsConfig>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_aors_are_those_of_its_domains() {
        let mut config = TenantsConfig::default();
        config.domains.insert("acme.test".into(), "acme".into());
        config.domains.insert("acme.example".into(), "acme".into());
        config.domains.insert("globex.test".into(), "globex".into());
        let acme = config.aor_filter("acme");
        assert_eq!(acme.domains, ["acme.example", "acme.test"]);
        assert!(acme.excluded.is_empty());
        // The default tenant: every domain no other tenant claims.
        let default = config.aor_filter("default");
        assert!(default.domains.is_empty());
        assert_eq!(default.excluded.len(), 3);
    }
}
