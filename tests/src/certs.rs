//! A test PKI made fresh for every test: a CA, server certificates for
//! chosen names and addresses, client certificates, all written as PEM
//! files in the test's run directory, and the rustls configs a test client
//! needs to trust them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority that issues into one folder.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
    /// The CA certificate, PEM, as a file to give to clients and proxies.
    pub cert_file: PathBuf,
}

/// An issued certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            dir: dir.to_owned(),
            cert_file,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), written
    /// as `<file>.pem` and `<file>.key`.
    pub fn server(&self, file: &str, names: &[&str]) -> CertFiles {
        self.issue(file, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (a trunk, a cluster peer).
    pub fn client(&self, file: &str, name: &str) -> CertFiles {
        self.issue(file, &[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, file: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        // An address also as a DNS name: linphone matches only DNS names
        // against the host it dials, even when that host is an IP.
        for name in &names {
            if name.parse::<std::net::IpAddr>().is_ok() {
                let dns = name.clone().try_into().unwrap();
                params.subject_alt_names.push(rcgen::SanType::DnsName(dns));
            }
        }
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// A client config trusting only this CA, presenting `client` if given.
    pub fn client_config(&self, client: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.cert_file).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(files) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(&files.cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(&files.key).unwrap(),
                )
                .unwrap(),
        };
        Arc::new(config)
    }
}
