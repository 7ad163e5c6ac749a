//! Real browsers as phones: JsSIP (npm `jssip`) in headless Debian
//! Chromium, driven by `tests/browser/run.mjs`, registering over secure
//! WebSocket (RFC 7118) and calling
//! - each other (two browser contexts, WebRTC media between them), and
//! - linphonec on UDP, answering with ICE and DTLS-SRTP as a browser
//!   needs (the call crosses transports: two Record-Route entries).
//!   Signalling only: linphonec's ICE, like baresip's (whose `ice` module
//!   then refuses the call outright), gathers no candidate on a loopback
//!   address, the only kind there is in here, so no media path forms.
//!
//! The whole test runs in a network namespace of its own holding only
//! `lo`: Chromium gathers ICE candidates on every interface and looks up
//! Google's hosts at start, and in here nothing but loopback exists, so
//! nothing it does can leave 127.0.0.0/8. That is why this binary has its
//! own `main` (`harness = false`): the namespace must be entered while the
//! process has one thread. Run it with `cargo test --test browser_wss`
//! (`-- NAME` runs the cases whose name contains NAME).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::NodeHandle;
use switchyard::net::Transport;
use switchyard_tests::certs::{CertFiles, TestCa};
use switchyard_tests::linphone::Linphone;
use switchyard_tests::softphone::Account;
use switchyard_tests::{run_dir, start_node_with_users};

const ALICE: (&str, &str) = ("alice", "alice-Pw-2026!");
const BOB: (&str, &str) = ("bob", "bob-Pw-2026!");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A node at `ip` whose domain is `ip`, with digest auth for alice and bob
/// and a `wss` listener serving a certificate from a fresh CA.
async fn node_with_wss(ip: &str) -> (NodeHandle, CertFiles) {
    let ca = TestCa::new(&run_dir("pki", ip), "node");
    let cert = ca.server("node", &[ip]);
    let files = cert.clone();
    let node = start_node_with_users(ip, &[ALICE, BOB], move |c| {
        c.listen.push(format!("wss:{ip}:0").parse().unwrap());
        c.tls.cert = Some(files.cert.clone());
        c.tls.key = Some(files.key.clone());
    })
    .await;
    (node, cert)
}

/// Runs one scenario of `tests/browser/run.mjs` and returns its JSON report;
/// panics, with the browsers' console, when it did not succeed.
async fn browsers(node: &NodeHandle, cert: &CertFiles, ip: &str, mut args: Value) -> Value {
    let wss = node.addr(Transport::Wss);
    args["ws"] = json!(format!("wss://{wss}/"));
    args["cert"] = json!(cert.cert);
    args["domain"] = json!(ip);
    args["timeout_ms"] = json!(30_000);
    let output = tokio::process::Command::new("node")
        .arg("tests/browser/run.mjs")
        .arg(args.to_string())
        .current_dir(repo_root())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (bash tests/install-tools.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    if report["ok"] != true {
        panic!(
            "browser scenario failed: {}\n--- report\n{stdout}\n--- console\n{}",
            report["error"],
            String::from_utf8_lossy(&output.stderr)
        );
    }
    report
}

/// The events of one browser phone, by name.
fn events<'a>(report: &'a Value, phone: &str) -> Vec<&'a str> {
    report[phone]["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["ev"].as_str()).collect())
        .unwrap_or_default()
}

async fn two_browsers_call_each_other_over_wss() {
    let ip = "127.0.98.1";
    let (node, cert) = node_with_wss(ip).await;
    let args = json!({
        "scenario": "call-browser",
        "caller": {"user": ALICE.0, "password": ALICE.1},
        "callee": {"user": BOB.0, "password": BOB.1},
        "hold_ms": 1000,
        "require_media": true,
    });
    let report = browsers(&node, &cert, ip, args).await;
    for phone in ["caller", "callee"] {
        let seen = events(&report, phone);
        for ev in ["registered", "confirmed", "ended"] {
            assert!(seen.contains(&ev), "{phone} never {ev}: {seen:?}");
        }
        assert_eq!(
            report[phone]["ice_connected"], true,
            "{phone}: media flowed"
        );
    }
    // Both registered and were challenged (REGISTER 401, INVITE 407).
    assert!(node.stats().auth_challenged.get() >= 3);
    assert_eq!(node.stats().auth_failed.get(), 0);
    assert_eq!(node.transport_stats().handshake_failures, 0);
    node.shutdown().await;
}

async fn a_browser_calls_linphone_on_udp() {
    let ip = "127.0.98.2";
    let (node, cert) = node_with_wss(ip).await;
    let bob = Account {
        user: BOB.0.into(),
        domain: ip.into(),
        proxy: node.addr(Transport::Udp),
        transport: Transport::Udp,
        outbound: false,
        password: Some(BOB.1.into()),
        ca: None,
    };
    let mut phone = Linphone::start_webrtc(ip, &bob, true).await;
    phone.register().await;

    let alice_uri = format!("sip:{}@{ip}", ALICE.0);
    let args = json!({
        "scenario": "call-uri",
        "caller": {"user": ALICE.0, "password": ALICE.1},
        "target": bob.aor(),
        "hold_ms": 1000,
        // No media check: linphonec's ICE, like baresip's, gathers no
        // candidate on loopback, the only interface in here.
        "require_media": false,
    });
    let browser = browsers(&node, &cert, ip, args);
    let answered = async {
        let id = phone.incoming(&alice_uri).await;
        phone.wire("<<<", "INVITE ", "INVITE").await;
        phone.connected(id, &alice_uri).await;
        let reason = phone.ended(id, &alice_uri).await;
        // The INVITE as linphonec dumped it, up to the blank line.
        let output = phone.output();
        let at = output.find("INVITE sip:bob@").expect("the INVITE dump");
        let invite: String = output[at..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        (invite, reason)
    };
    let (report, (invite, reason)) = tokio::join!(browser, answered);
    let seen = events(&report, "caller");
    assert!(seen.contains(&"confirmed"), "{seen:?}");
    assert_eq!(reason, "No error", "ended on the browser's BYE");
    // The node's entries facing each side: UDP towards linphone, WSS
    // towards the browser.
    let rr: Vec<&str> = invite
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route:"))
        .flat_map(|v| v.split(">,"))
        .collect();
    assert_eq!(rr.len(), 2, "two Record-Route entries: {invite}");
    assert!(rr[1].contains("transport=wss"), "{rr:?}");
    node.shutdown().await;
}

type Case = fn() -> Pin<Box<dyn Future<Output = ()>>>;

const CASES: [(&str, Case); 2] = [
    ("two_browsers_call_each_other_over_wss", || {
        Box::pin(two_browsers_call_each_other_over_wss())
    }),
    ("a_browser_calls_linphone_on_udp", || {
        Box::pin(a_browser_calls_linphone_on_udp())
    }),
];

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&(&str, Case)> = CASES
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed");
        return;
    }
    if let Err(e) = netns::enter_loopback_only() {
        eprintln!(
            "cannot run the browser tests in a network namespace of their own: {e}\n\
             (they need root, or unprivileged user namespaces)"
        );
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let total = selected.len();
    println!("\nrunning {total} tests");
    let mut failed = Vec::new();
    for (name, case) in selected {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async { tokio::time::timeout(Duration::from_secs(90), case()).await })
        }));
        match outcome {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(_)) => {
                println!("test {name} ... FAILED (timed out)");
                failed.push(*name);
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = total - failed.len();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed\n");
    } else {
        println!(
            "\nfailures: {failed:?}\ntest result: FAILED. {passed} passed; {} failed\n",
            failed.len()
        );
        std::process::exit(101);
    }
}

/// Entering a network namespace that has only a loopback interface.
mod netns {
    use std::io;

    /// Unshares the network namespace (as root; else inside a new user
    /// namespace, mapping us to its root) and brings `lo` up. Must run while
    /// the process has a single thread.
    pub fn enter_loopback_only() -> io::Result<()> {
        // SAFETY: plain syscalls on our own process, before any thread exists.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                let (uid, gid) = (libc::getuid(), libc::getgid());
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                std::fs::write("/proc/self/setgroups", "deny")?;
                std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
                std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
            }
            loopback_up()
        }
    }

    unsafe fn loopback_up() -> io::Result<()> {
        // SAFETY: an ioctl on a socket we own, with a zeroed ifreq naming "lo".
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as libc::c_char;
            }
            let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
            };
            let err = io::Error::last_os_error();
            libc::close(fd);
            if ok { Ok(()) } else { Err(err) }
        }
    }
}
