//! TLS for the `tls` and `wss` listeners and for outbound `tls` connections
//! (RFC 3261 §26.2, RFC 5922, RFC 5630), on rustls.
//!
//! - Server side: one certificate resolver for the node, chosen by SNI (one
//!   certificate per tenant domain), else the listener's own certificate,
//!   else the node's default; optional client-certificate verification per
//!   listener.
//! - Client side: the next hop's certificate is verified against the
//!   configured CA bundle or the system roots, with the SIP domain of the
//!   request URI as the name (RFC 5922 §7), never skipped.
//! - Certificates are reloaded when their files change (or on
//!   [`TlsContext::reload`]); open connections keep the certificate they
//!   were set up with.

mod certs;
mod config;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{info, warn};

pub use self::certs::CertificateError;
use self::certs::{CertResolver, ListenerResolver, load_roots};
pub use self::config::{ClientAuth, ListenerTls, SniCertificate, TlsConfig};
use super::config::ListenerSpec;
use crate::net::Transport;

/// Everything TLS a node needs at run time: acceptors per secure listener,
/// the outbound connector and the reloadable certificates behind both.
pub struct TlsContext {
    config: TlsConfig,
    resolver: Arc<CertResolver>,
    /// Built at the first outbound TLS connection (reading the system
    /// roots costs a few milliseconds a node without TLS peers never pays).
    connector: OnceLock<Result<TlsConnector, String>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsContext {
    /// Loads every certificate and CA the config names. Fails when a secure
    /// listener is configured with no certificate at all, or a file is bad.
    pub fn load(config: &TlsConfig, listeners: &[ListenerSpec]) -> Result<Self, CertificateError> {
        let resolver = Arc::new(CertResolver::load(config)?);
        if let Some(bare) = listeners
            .iter()
            .find(|l| l.transport.is_secure() && !resolver.serves(l))
        {
            return Err(CertificateError::Missing(bare.to_string()));
        }
        if let Some(ca) = &config.ca {
            // A bad bundle is a start-up error, not a failure at the first call.
            load_roots(ca)?;
        }
        let watcher = if config.watch {
            certs::watch(config, resolver.clone())
        } else {
            None
        };
        Ok(TlsContext {
            config: config.clone(),
            resolver,
            connector: OnceLock::new(),
            _watcher: watcher,
        })
    }

    /// The acceptor of one `tls` or `wss` listener: the node's certificates,
    /// client certificates verified as configured for that listener.
    pub fn acceptor(&self, spec: &ListenerSpec) -> Result<TlsAcceptor, CertificateError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(CertificateError::Rustls)?;
        let mode = self.config.client_auth_for(spec);
        let builder = match (mode, &self.config.client_ca) {
            (ClientAuth::Off, _) => builder.with_no_client_auth(),
            (_, None) => return Err(CertificateError::NoClientCa(spec.to_string())),
            (mode, Some(ca)) => {
                let roots = Arc::new(load_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if mode == ClientAuth::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| CertificateError::Verifier(e.to_string()))?,
                )
            }
        };
        let mut server = builder.with_cert_resolver(Arc::new(ListenerResolver {
            certs: self.resolver.clone(),
            listener: *spec,
        }));
        if spec.transport == Transport::Wss {
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(TlsAcceptor::from(Arc::new(server)))
    }

    /// The connector for outbound TLS.
    pub fn connector(&self) -> io::Result<TlsConnector> {
        let built = self.connector.get_or_init(|| {
            let roots = match &self.config.ca {
                Some(path) => load_roots(path).map_err(|e| e.to_string())?,
                None => system_roots(),
            };
            let client = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                // Our certificate goes out only when the peer asks for one
                // (a trunk or cluster peer verifying clients).
                .with_client_cert_resolver(self.resolver.clone());
            Ok(TlsConnector::from(Arc::new(client)))
        });
        built.clone().map_err(io::Error::other)
    }

    /// Reads every certificate file again and swaps them in; on any error
    /// the old set stays. Connections already open are not touched.
    pub fn reload(&self) -> Result<(), CertificateError> {
        self.resolver.reload(&self.config)
    }

    /// How many times certificates were reloaded successfully.
    pub fn reloads(&self) -> u64 {
        self.resolver.reloads()
    }
}

/// The name a server certificate must carry (RFC 5922 §7.2): the SIP domain
/// or host of the URI we are sending to, else the address itself.
pub fn server_name(name: Option<&str>, addr: SocketAddr) -> ServerName<'static> {
    name.and_then(|n| ServerName::try_from(n.to_ascii_lowercase()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        warn!("no system CA certificates found: outbound TLS needs tls.ca");
    } else {
        info!(
            count = added,
            "system CA certificates loaded for outbound TLS"
        );
    }
    roots
}
