//! The `[tls]` section: certificates, client verification, outbound trust.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::transport::config::ListenerSpec;

/// TLS settings of a node. Paths are PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain (leaf first) served to clients that send no SNI
    /// name or a name no `sni` entry has, and presented to peers that ask
    /// for a client certificate.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// More certificates, chosen by the name the client asks for (SNI):
    /// one per tenant domain in a hosted PBX.
    pub sni: Vec<SniCertificate>,
    /// CA bundle client certificates are verified against, for listeners
    /// whose client authentication is not `off`.
    pub client_ca: Option<PathBuf>,
    /// Client certificates on every `tls`/`wss` listener: `off` (default),
    /// `optional` (verified when sent) or `required`.
    pub verify_clients: ClientAuth,
    /// Per-listener settings: its own certificate, or its own client
    /// verification (a trunk or cluster-peer port that requires one).
    pub listener: Vec<ListenerTls>,
    /// CA bundle outbound TLS verifies next hops against; default: the
    /// system roots. Verification cannot be turned off.
    pub ca: Option<PathBuf>,
    /// A TLS (or WebSocket) handshake must complete within this long.
    pub handshake_timeout_ms: u64,
    /// Reload certificates when their files change.
    pub watch: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            sni: Vec::new(),
            client_ca: None,
            verify_clients: ClientAuth::Off,
            listener: Vec::new(),
            ca: None,
            handshake_timeout_ms: 5_000,
            watch: true,
        }
    }
}

impl TlsConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }

    /// Client authentication on one listener.
    pub fn client_auth_for(&self, spec: &ListenerSpec) -> ClientAuth {
        self.listener_settings(spec)
            .and_then(|l| l.verify_clients)
            .unwrap_or(self.verify_clients)
    }

    pub(super) fn listener_settings(&self, spec: &ListenerSpec) -> Option<&ListenerTls> {
        self.listener.iter().find(|l| l.listen == *spec)
    }

    /// Every file the certificates come from, for the reload watcher.
    pub fn cert_files(&self) -> Vec<PathBuf> {
        let sni = self.sni.iter().map(|s| (&s.cert, &s.key));
        let listeners = self
            .listener
            .iter()
            .filter_map(|l| l.cert.as_ref().zip(l.key.as_ref()));
        let default = self.cert.iter().zip(self.key.iter());
        default
            .chain(sni)
            .chain(listeners)
            .flat_map(|(c, k)| [c.clone(), k.clone()])
            .collect()
    }
}

/// One `[[tls.sni]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SniCertificate {
    /// Names this certificate is served for; `*.example.com` matches one label.
    pub domains: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One `[[tls.listener]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The listener, as written in `listen` (`tls:0.0.0.0:5062`).
    pub listen: ListenerSpec,
    /// Client certificates here, instead of `tls.verify_clients`.
    #[serde(default)]
    pub verify_clients: Option<ClientAuth>,
    /// This listener's certificate, instead of `tls.cert`/`tls.key` (SNI
    /// entries still win for the names they list).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Off,
    Optional,
    Required,
}
