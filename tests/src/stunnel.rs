//! SIPp over TLS: Debian's SIPp is built without OpenSSL, so a test puts
//! Debian's stunnel in front of it. SIPp speaks TCP to stunnel, which opens
//! one TLS connection to the node per SIPp connection, verifying the node's
//! certificate against the test CA. The node sees a real TLS client; only
//! the Via SIPp writes still says TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const STUNNEL: &str = "/usr/bin/stunnel4";

/// A running stunnel client; killed on drop.
pub struct Stunnel {
    _child: Child,
    /// Where SIPp connects (plain TCP).
    pub accept: SocketAddr,
}

impl Stunnel {
    /// Accepts TCP on `accept` and forwards each connection over TLS to
    /// `node`, whose certificate must chain to `ca` and name `node`'s IP.
    /// The TLS connections leave from `accept`'s IP: give SIPp the same one,
    /// so the node sees its Via address as the flow's (no NAT in between).
    pub async fn client(dir: &Path, accept: SocketAddr, node: SocketAddr, ca: &Path) -> Stunnel {
        assert!(
            Path::new(STUNNEL).exists(),
            "{STUNNEL} is not installed: run `bash tests/install-tools.sh`"
        );
        let conf = dir.join("stunnel.conf");
        let text = format!(
            "foreground = yes\npid =\ndebug = notice\n\n[sip]\nclient = yes\n\
             accept = {accept}\nconnect = {node}\nlocal = {local}\nCAfile = {ca}\nverifyChain = yes\n\
             checkIP = {ip}\nsslVersionMin = TLSv1.2\n",
            ca = ca.display(),
            ip = node.ip(),
            local = accept.ip(),
        );
        std::fs::write(&conf, text).expect("stunnel config");
        let mut child = Command::new(STUNNEL)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning stunnel");
        // It says so once its listening socket is bound.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Configuration successful") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            ready,
            Ok(true),
            "stunnel did not start ({})",
            conf.display()
        );
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Stunnel {
            _child: child,
            accept,
        }
    }
}
