//! Harness for Switchyard's end-to-end tests: nodes on real loopback
//! sockets, bare SIP endpoints ([`ua`]) and SIPp ([`sipp`]).
//!
//! Every test uses its own 127.0.0.x address so tests can run in parallel
//! without port clashes, and every node runs with egress locked to
//! 127.0.0.0/8 and no DNS: nothing a test does can leave this machine.

pub mod baresip;
pub mod certs;
pub mod cluster;
pub mod linphone;
pub mod phone;
pub mod policy;
pub mod sipp;
pub mod softphone;
pub mod stunnel;
pub mod ua;
pub mod ws;

use switchyard::net::Transport;
use switchyard::{Config, Node, NodeHandle};

/// The domain the test registrar serves.
pub const DOMAIN: &str = "switchyard.test";

/// Starts a node listening on UDP and TCP at `ip` (ephemeral ports).
pub async fn start_node(ip: &str) -> NodeHandle {
    start_node_with(ip, |_| {}).await
}

pub async fn start_node_with(ip: &str, tweak: impl FnOnce(&mut Config)) -> NodeHandle {
    init_tracing();
    let mut config =
        Config::for_tests(&[&format!("udp:{ip}:0"), &format!("tcp:{ip}:0")], &[DOMAIN]);
    tweak(&mut config);
    // Port 0 gives UDP and TCP one port number between them; a softphone
    // of a test running alongside may hold that number on the wildcard
    // address. Another draw is all it takes.
    let mut attempts = 0;
    loop {
        match Node::start(config.clone()).await {
            Ok(node) => return node,
            Err(e) if attempts < 5 && format!("{e:#}").contains("Address already in use") => {
                attempts += 1;
            }
            Err(e) => panic!("node starts: {e:?}"),
        }
    }
}

/// Starts a node the way most softphone setups point at a proxy: the SIP
/// domain is the proxy's own IP address, with phones on the same host.
pub async fn start_node_domain_is_ip(ip: &str) -> NodeHandle {
    start_node_with(ip, |c| c.domains = vec![ip.to_string()]).await
}

/// [`start_node_domain_is_ip`] with digest authentication on (`[auth]`)
/// and `users` (name, password) as the subscribers of that domain;
/// `tweak` may change the rest (algorithms, throttling).
pub async fn start_node_with_users(
    ip: &str,
    users: &[(&str, &str)],
    tweak: impl FnOnce(&mut Config),
) -> NodeHandle {
    let file = run_dir("auth", ip).join("subscribers.toml");
    switchyard::auth::edit_file(&file, |list| {
        list.extend(
            users
                .iter()
                .map(|(u, p)| switchyard::auth::Subscriber::new(ip, u, p)),
        )
    })
    .expect("writing the subscriber file");
    start_node_with(ip, |c| {
        c.domains = vec![ip.to_string()];
        c.auth.enabled = true;
        c.auth.subscribers = Some(file);
        tweak(c);
    })
    .await
}

/// Offer these digest algorithms, in this order (a [`start_node_with_users`] tweak).
pub fn algorithms(list: &[&str]) -> impl FnOnce(&mut Config) {
    let list: Vec<String> = list.iter().map(|a| a.to_string()).collect();
    move |c| c.auth.algorithms = list
}

/// `ip:port` of the node's UDP listener, for request lines and SIPp.
pub fn udp_addr(node: &NodeHandle) -> std::net::SocketAddr {
    node.addr(Transport::Udp)
}

pub fn tcp_addr(node: &NodeHandle) -> std::net::SocketAddr {
    node.addr(Transport::Tcp)
}

/// Logs go to the test's captured output; `RUST_LOG=debug` shows them.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits for a SIPp run without blocking the runtime the node runs on.
pub async fn finish(child: sipp::SippChild) -> sipp::SippResult {
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("sipp waiter")
}

/// Stops a SIPp callee and collects its result.
pub async fn stop(child: sipp::SippChild) -> sipp::SippResult {
    tokio::task::spawn_blocking(move || child.stop())
        .await
        .expect("sipp stopper")
}

/// `127.0.a.b` as an IP address.
pub fn ip(a: u8, b: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, a, b))
}

/// A fresh directory for one run of an external tool (its config, logs
/// and traces): `$TMPDIR/switchyard-<tool>/<pid>-<n>-<name>`.
pub fn run_dir(tool: &str, name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join(format!("switchyard-{tool}"))
        .join(format!("{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Whether the environment variable `var` asks to keep run directories
/// after a passing test (set, and neither empty nor `0`).
pub fn keep_env(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0")
}
