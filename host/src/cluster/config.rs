//! `[cluster]`: what every node of one cluster shares.

use serde::Deserialize;

use crate::net::Transport;
pub use switchyard_proto::cluster::ContactRewrite;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The shared secret every node seals tokens with (flow tokens,
    /// temp-GRUUs, rewritten Contacts). Unset: a random one per process,
    /// which is only right for a single node.
    pub secret: Option<String>,
    /// Earlier secrets still accepted when opening tokens, so a rotation
    /// does not break registrations and dialogs in progress.
    pub previous_secrets: Vec<String>,
    /// Host written into temp-GRUUs and rewritten Contacts: a name that
    /// reaches any node (the SRV/load-balancer name). Default: the first
    /// of `domains`.
    pub domain: Option<String>,
    /// The default for tenants without `[tenants.contact_rewrite]`.
    pub contact_rewrite: ContactRewrite,
    /// The transport other nodes use to reach this one through its Path
    /// and Record-Route entries: `tcp` (default when a TCP listener
    /// exists: a dead node is noticed at once) or `udp`.
    pub path_transport: Option<PathTransport>,
}

/// `cluster.path_transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathTransport {
    Udp,
    Tcp,
}

impl From<PathTransport> for Transport {
    fn from(t: PathTransport) -> Transport {
        match t {
            PathTransport::Udp => Transport::Udp,
            PathTransport::Tcp => Transport::Tcp,
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            secret: None,
            previous_secrets: Vec::new(),
            domain: None,
            contact_rewrite: ContactRewrite::Nat,
            path_transport: None,
        }
    }
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), String> {
        let short = |s: &String| s.len() < 16;
        if self.secret.as_ref().is_some_and(short) || self.previous_secrets.iter().any(short) {
            return Err("key `cluster.secret`: secrets must be at least 16 characters".into());
        }
        if self.secret.is_none() && !self.previous_secrets.is_empty() {
            return Err("key `cluster.previous_secrets`: needs `cluster.secret` too".into());
        }
        Ok(())
    }

    /// The secrets, current first; a random one when none is configured.
    pub fn secrets(&self) -> Vec<String> {
        match &self.secret {
            Some(s) => std::iter::once(s.clone())
                .chain(self.previous_secrets.iter().cloned())
                .collect(),
            None => vec![format!("{:032x}", rand::random::<u128>())],
        }
    }
}
