//! `[store.cassandra.tls]`: TLS to the cluster (rustls), optionally with a
//! client certificate (mutual TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// TLS settings. With `enabled = false` (default) CQL runs in clear text.
///
/// The driver connects to nodes by IP address, so each node's certificate
/// must carry its IP address as a subjectAltName (Cassandra's
/// `client_encryption_options` with certificates issued per node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Encrypt connections to the cluster.
    pub enabled: bool,
    /// PEM file of the CA certificate(s) that signed the nodes'
    /// certificates. Required when enabled.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for clusters that require client
    /// authentication (`require_client_auth: true`). Both or neither with
    /// `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Why the TLS settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cassandra.tls.enabled needs cassandra.tls.ca_file")]
    NoCa,
    #[error("cassandra.tls.cert_file and key_file go together")]
    HalfClientAuth,
    #[error("cassandra TLS file {path}: {problem}")]
    File { path: String, problem: String },
    #[error("cassandra TLS: {0}")]
    Rustls(String),
}

fn file_error(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Checks the settings without reading files.
    pub fn validate(&self) -> Result<(), TlsError> {
        if !self.enabled {
            return Ok(());
        }
        if self.ca_file.is_none() {
            return Err(TlsError::NoCa);
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(TlsError::HalfClientAuth);
        }
        Ok(())
    }

    /// The rustls client configuration, or `None` when TLS is off. Reads
    /// the PEM files.
    pub fn client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        if !self.enabled {
            return Ok(None);
        }
        self.validate()?;
        let ca = self.ca_file.as_deref().ok_or(TlsError::NoCa)?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(ca)? {
            roots.add(cert).map_err(|e| file_error(ca, e))?;
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Some(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = r"-----BEGIN CERTIFICATE-----
MIIBkjCCATegAwIBAgIUI9hXfa0Jc0DOHc8GbM0+mUgkb3YwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSc3dpdGNoeWFyZC10ZXN0LWNhMCAXDTI2MTEyMjA0MjY0MFoY
DzIxMjYxMDI5MDQyNjQwWjAdMRswGQYDVQQDDBJzd2l0Y2h5YXJkLXRlc3QtY2Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARq2cJPI9TxbI5udOWWEIPF4NkkYKuO
zMSg+o1oa76RRslUXfl9dofFjqNogRFoRjQjXYHtViFwiZVa6xDoS9xeo1MwUTAd
BgNVHQ4EFgQUUcwOXDGRPCPQmhBupD7Q2U/g1t8wHwYDVR0jBBgwFoAUUcwOXDGR
PCPQmhBupD7Q2U/g1t8wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBG
AiEA0otBJWj1DP6nHuIa5uF7/ImwHN+/6J5T80gd3GpjIakCIQCI7qbqtL9EjX2t
uCbwoKD0kcSG4z4FUqbIDN9nUBDzlQ==
-----END CERTIFICATE-----
";
    const CLIENT_CERT: &str = r"-----BEGIN CERTIFICATE-----
MIIBrDCCAVKgAwIBAgIUX0A74PcIYTem6uKOlEFh4UPdjdcwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSc3dpdGNoeWFyZC10ZXN0LWNhMCAXDTI2MTEyMjA0Mjk1MloY
DzIxMjYxMDI5MDQyOTUyWjAcMRowGAYDVQQDDBFzd2l0Y2h5YXJkLWNsaWVudDBZ
MBMGByqGSM49AgEGCCqGSM49AwEHA0IABIF5PHc6r7CaSGa6xAVI/B5wrM4GwGxC
PImF7mxkaBKQPa6TabMQpGG9I+niXN9z3hmQaRVsc2ucAxRiV6qReVSjbzBtMAkG
A1UdEwQCMAAwCwYDVR0PBAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMCMB0GA1Ud
DgQWBBQky7lyd+HyAO0kEAtYNbS7nGv1/zAfBgNVHSMEGDAWgBRRzA5cMZE8I9Ca
EG6kPtDZT+DW3zAKBggqhkjOPQQDAgNIADBFAiAjCmbjPt7Cjcl0H8Bs+WsKUdlM
LDWKMmX5u3oWhHfOqAIhALFTjT/WYpoj0IlOqT3mAOIBanHx9NIMe0tGIKra/erV
-----END CERTIFICATE-----
";
    const CLIENT_KEY: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguNv4e/3FH1zo081Z
IyzHNg8Yu7DlWDMV33GUAYA+zMKhRANCAASBeTx3Oq+wmkhmusQFSPwecKzOBsBs
QjyJhe5sZGgSkD2uk2mzEKRhvSPp4lzfc94ZkGkVbHNrnAMUYleqkXlU
-----END PRIVATE KEY-----
";

    fn write(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-tls-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn disabled_is_clear_text() {
        assert!(matches!(TlsConfig::default().client_config(), Ok(None)));
    }

    #[test]
    fn loads_ca_and_client_certificate() {
        let mut tls = TlsConfig {
            enabled: true,
            ca_file: Some(write("ca.pem", CA)),
            ..TlsConfig::default()
        };
        assert!(tls.client_config().unwrap().is_some());
        tls.cert_file = Some(write("client.pem", CLIENT_CERT));
        tls.key_file = Some(write("client.key", CLIENT_KEY));
        let config = tls.client_config().unwrap().expect("TLS on");
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn refuses_incomplete_or_bad_settings() {
        let on = TlsConfig {
            enabled: true,
            ..TlsConfig::default()
        };
        assert_eq!(on.validate(), Err(TlsError::NoCa));
        let half = TlsConfig {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("c.pem".into()),
            ..on.clone()
        };
        assert_eq!(half.validate(), Err(TlsError::HalfClientAuth));
        let missing = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..on.clone()
        };
        assert!(matches!(
            missing.client_config(),
            Err(TlsError::File { .. })
        ));
        let garbage = TlsConfig {
            ca_file: Some(write("ca.pem", "not a certificate")),
            ..on
        };
        let error = garbage.client_config().unwrap_err();
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn parses_from_toml() {
        let tls: TlsConfig = toml::from_str("enabled = true\nca_file = \"/etc/ca.pem\"").unwrap();
        assert!(tls.enabled);
        assert!(toml::from_str::<TlsConfig>("ca = \"x\"").is_err());
    }
}
