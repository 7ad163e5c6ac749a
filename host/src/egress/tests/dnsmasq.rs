//! End to end through real DNS: a dnsmasq child process on 127.0.53.1 serves
//! the zone in `tests/dns/switchyard.test.conf`, and the hickory-backed
//! resolver must produce the RFC 3263 order from it. All traffic stays on the
//! loopback (dnsmasq has no upstream, and every record points at 127.x/::1).
//!
//! dnsmasq is a test requirement (`apt-get install -y dnsmasq-base`, done by
//! `.ci/run`); without it this test fails and says so.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{hop, tcp, udp};
use crate::egress::{
    DnsLookup, Egress, EgressConfig, EgressError, HickoryDns, Resolver, Rfc3263Resolver,
    StaticHosts,
};
use crate::net::Destination;
use crate::net::Transport;

const ZONE: &str = include_str!("../../../../tests/dns/switchyard.test.conf");
const LISTEN: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 53, 1));

/// A running dnsmasq, killed (and its zone file removed) on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    conf: PathBuf,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.conf);
    }
}

fn find_dnsmasq() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // /usr/sbin is often missing from a non-root PATH.
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("dnsmasq"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "dnsmasq not found (PATH and /usr/sbin): this test needs it as a local DNS \
                 server. Install it with `apt-get install -y dnsmasq-base` (.ci/run does)."
            )
        })
}

/// A port that is free for UDP right now. dnsmasq may still lose a race for
/// it, in which case it exits and `start` tries another.
fn free_port() -> u16 {
    let socket = UdpSocket::bind(SocketAddr::new(LISTEN, 0)).expect("bind 127.0.53.1");
    socket.local_addr().unwrap().port()
}

fn spawn(bin: &Path, conf: &Path, port: u16) -> Child {
    Command::new(bin)
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf.display()))
        .args([
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--pid-file=",
        ])
        .arg(format!("--listen-address={LISTEN}"))
        .arg(format!("--port={port}"))
        .arg("--log-facility=-")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// Starts dnsmasq and waits until it answers a query (polling, no fixed sleep).
async fn start() -> Dnsmasq {
    let bin = find_dnsmasq();
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port();
        let conf = std::env::temp_dir().join(format!(
            "switchyard-egress-{}-{port}.conf",
            std::process::id()
        ));
        std::fs::write(&conf, ZONE).expect("write dnsmasq zone");
        let mut server = Dnsmasq {
            child: spawn(&bin, &conf, port),
            addr: SocketAddr::new(LISTEN, port),
            conf,
        };
        // A separate short-timeout resolver for probing, so nothing it caches
        // can influence the resolver under test.
        let probe = HickoryDns::new(&[server.addr], Duration::from_millis(200)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = server.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                last_error = format!("dnsmasq exited with {status}: {stderr}");
                break;
            }
            if let Ok(ips) = probe.addrs("a.switchyard.test").await
                && !ips.is_empty()
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq on {} never answered",
                server.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("could not start dnsmasq: {last_error}");
}

#[tokio::test]
async fn rfc3263_resolution_against_dnsmasq() {
    let server = start().await;
    let dns: Arc<dyn DnsLookup> =
        Arc::new(HickoryDns::new(&[server.addr], Duration::from_secs(2)).unwrap());
    let resolver = Rfc3263Resolver::new(StaticHosts::default(), Some(dns));

    // NAPTR in order: SIPS+D2T (TLS, its certificate to name the domain),
    // SIP+D2T, SIP+D2U; each SRV set in priority order; b has A and AAAA
    // (IPv4 first).
    let tls = Destination::new(Transport::Tls, "127.0.0.13:5061".parse().unwrap())
        .with_tls_name("switchyard.test");
    assert_eq!(
        resolver.resolve(&hop("switchyard.test")).await,
        Ok(vec![
            tls.clone(),
            tcp("127.0.0.11:5070"),
            tcp("127.0.0.12:5071"),
            tcp("[::1]:5071"),
            udp("127.0.0.11:5060"),
        ])
    );
    // A SIPS URI: only SIPS+D2T is usable (RFC 3263 §4.1).
    let mut sips = hop("switchyard.test");
    sips.secure = true;
    assert_eq!(resolver.resolve(&sips).await, Ok(vec![tls]));
    // No NAPTR: SRV per supported transport (only _sip._udp exists).
    assert_eq!(
        resolver.resolve(&hop("srv-only.switchyard.test")).await,
        Ok(vec![udp("127.0.0.12:5072"), udp("[::1]:5072")])
    );
    // No NAPTR, no SRV: A at 5060 over UDP.
    assert_eq!(
        resolver.resolve(&hop("plain.switchyard.test")).await,
        Ok(vec![udp("127.0.0.14:5060")])
    );
    // Explicit port and transport: A/AAAA only.
    let explicit = hop("a.switchyard.test")
        .with_port(5099)
        .with_transport(Transport::Tcp);
    assert_eq!(
        resolver.resolve(&explicit).await,
        Ok(vec![tcp("127.0.0.11:5099")])
    );
    // NXDOMAIN everywhere.
    assert_eq!(
        resolver.resolve(&hop("nx.switchyard.test")).await,
        Err(EgressError::NotFound("nx.switchyard.test".into()))
    );
}

#[tokio::test]
async fn egress_from_config_with_nameserver_and_allowlist() {
    let server = start().await;
    let config: EgressConfig = toml::from_str(&format!(
        r#"
        allow = ["127.0.0.0/8"]
        nameservers = ["{}"]
        [hosts]
        "plain.switchyard.test" = ["127.0.0.77:5077"]
        "#,
        server.addr
    ))
    .unwrap();
    let egress = Egress::from_config(&config).unwrap();
    // ::1 from b's AAAA is outside 127.0.0.0/8 and is dropped.
    assert_eq!(
        egress.resolve(&hop("srv-only.switchyard.test")).await,
        Ok(vec![udp("127.0.0.12:5072")])
    );
    // The static entry wins over the zone's A record.
    assert_eq!(
        egress.resolve(&hop("plain.switchyard.test")).await,
        Ok(vec![udp("127.0.0.77:5077")])
    );
}
