//! Certificates: PEM loading, the SNI table, and reload on file change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::config::TlsConfig;
use super::provider;
use crate::transport::config::ListenerSpec;

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(
        "listener {0} needs a certificate: set tls.cert and tls.key, or its own in [[tls.listener]]"
    )]
    Missing(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}: client certificates are verified here, but tls.client_ca is not set")]
    NoClientCa(String),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("tls.cert and tls.key must be set together")]
    HalfPair,
    #[error(transparent)]
    Rustls(rustls::Error),
}

fn file_error(path: &Path, message: impl ToString) -> CertificateError {
    CertificateError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// A chain and its key, checked to belong together.
fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertificateError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no certificate in the file"));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    CertifiedKey::from_der(chain, der, &provider())
        .map(Arc::new)
        .map_err(|e| file_error(key, e))
}

/// A CA bundle.
pub(super) fn load_roots(path: &Path) -> Result<RootCertStore, CertificateError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
        let cert = cert.map_err(|e| file_error(path, e))?;
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    if roots.is_empty() {
        return Err(file_error(path, "no CA certificate in the file"));
    }
    Ok(roots)
}

/// The certificates of one load: the default, the SNI table and the
/// listeners' own.
#[derive(Debug, Default)]
struct CertSet {
    default: Option<Arc<CertifiedKey>>,
    /// Lowercase names; `*.example.com` keys a wildcard.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    by_listener: HashMap<ListenerSpec, Arc<CertifiedKey>>,
}

impl CertSet {
    fn load(config: &TlsConfig) -> Result<Self, CertificateError> {
        let default = match (&config.cert, &config.key) {
            (Some(c), Some(k)) => Some(load_pair(c, k)?),
            (None, None) => None,
            _ => return Err(CertificateError::HalfPair),
        };
        let mut by_name = HashMap::new();
        for entry in &config.sni {
            let key = load_pair(&entry.cert, &entry.key)?;
            for name in &entry.domains {
                by_name.insert(name.to_ascii_lowercase(), key.clone());
            }
        }
        let mut by_listener = HashMap::new();
        for entry in &config.listener {
            match (&entry.cert, &entry.key) {
                (Some(c), Some(k)) => {
                    by_listener.insert(entry.listen, load_pair(c, k)?);
                }
                (None, None) => {}
                _ => return Err(CertificateError::HalfPair),
            }
        }
        Ok(CertSet {
            default,
            by_name,
            by_listener,
        })
    }

    /// The exact name, then a one-label wildcard, then the listener's own
    /// certificate, then the default.
    fn pick(
        &self,
        name: Option<&str>,
        listener: Option<&ListenerSpec>,
    ) -> Option<Arc<CertifiedKey>> {
        let named = name.and_then(|n| {
            let n = n.to_ascii_lowercase();
            self.by_name.get(&n).cloned().or_else(|| {
                let (_, parent) = n.split_once('.')?;
                self.by_name.get(&format!("*.{parent}")).cloned()
            })
        });
        named
            .or_else(|| listener.and_then(|l| self.by_listener.get(l).cloned()))
            .or_else(|| self.default.clone())
    }
}

/// Serves the node's certificates, server side by SNI and client side when
/// a peer asks for one; swapped whole on reload.
#[derive(Debug)]
pub(super) struct CertResolver {
    set: ArcSwap<CertSet>,
    reloads: AtomicU64,
}

impl CertResolver {
    pub fn load(config: &TlsConfig) -> Result<Self, CertificateError> {
        Ok(CertResolver {
            set: ArcSwap::from_pointee(CertSet::load(config)?),
            reloads: AtomicU64::new(0),
        })
    }

    /// Whether a client of `listener` can be served a certificate.
    pub fn serves(&self, listener: &ListenerSpec) -> bool {
        let set = self.set.load();
        set.default.is_some() || !set.by_name.is_empty() || set.by_listener.contains_key(listener)
    }

    pub fn reload(&self, config: &TlsConfig) -> Result<(), CertificateError> {
        let set = CertSet::load(config)?;
        self.set.store(Arc::new(set));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        info!("TLS certificates reloaded");
        Ok(())
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
}

/// The server side of one listener: the node's certificates, with the
/// listener's own as its default.
#[derive(Debug)]
pub(super) struct ListenerResolver {
    pub certs: Arc<CertResolver>,
    pub listener: ListenerSpec,
}

impl ResolvesServerCert for ListenerResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certs
            .set
            .load()
            .pick(hello.server_name(), Some(&self.listener))
    }
}

impl ResolvesClientCert for CertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.set.load().default.clone()
    }

    fn has_certs(&self) -> bool {
        self.set.load().default.is_some()
    }
}

/// Reloads the certificates when any of their files changes: the folders
/// are watched (a renewal tool replaces files by rename), and events are
/// collected for a short while so a cert and key written one after the
/// other load as a pair.
pub(super) fn watch(
    config: &TlsConfig,
    resolver: Arc<CertResolver>,
) -> Option<notify::RecommendedWatcher> {
    let files = config.cert_files();
    if files.is_empty() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watched = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event
                .paths
                .iter()
                .any(|p| watched.iter().any(|w| p.ends_with(w) || w.ends_with(p)))
        {
            let _ = tx.send(());
        }
    })
    .map_err(|e| warn!(error = %e, "cannot watch certificate files; reload by admin call"))
    .ok()?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                ".".into()
            } else {
                d
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), error = %e, "cannot watch certificate folder");
        }
    }
    let config = config.clone();
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || {
            // Ends when the watcher (and with it `tx`) is dropped.
            while rx.recv().is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                while rx.try_recv().is_ok() {}
                if let Err(e) = resolver.reload(&config) {
                    warn!(error = %e, "TLS certificate reload failed; the old ones stay");
                }
            }
        })
        .ok()?;
    Some(watcher)
}
