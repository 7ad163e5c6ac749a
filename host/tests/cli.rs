//! The `switchyard` binary as an operator runs it: `run` from flags alone,
//! answered by a real SIP tool (sipsak), and `check-config` on good and bad
//! files.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `switchyard run` and waits for its "listening" log lines.
fn start(args: &[&str], listeners: usize) -> Running {
    let mut child = Command::new(BIN)
        .args(["--log", "info", "run"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("listening") && tx.send(line).is_err() {
                break;
            }
        }
    });
    for _ in 0..listeners {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("switchyard did not report its listeners");
    }
    Running(child)
}

#[test]
fn run_from_flags_answers_sipsak_options() {
    let _node = start(
        &[
            "--listen",
            "udp:127.0.0.61:5090",
            "--listen",
            "tcp:127.0.0.61:5090",
            "--domain",
            "switchyard.test",
        ],
        2,
    );
    for transport in [None, Some("tcp")] {
        let mut cmd = Command::new("sipsak");
        cmd.args(["-vv", "-s", "sip:127.0.0.61:5090", "-H", "127.0.0.62"]);
        if let Some(t) = transport {
            cmd.args(["-E", t]);
        }
        let out = cmd
            .output()
            .expect("sipsak not found: apt-get install sipsak (CI installs it in .ci/run)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sipsak over {transport:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("SIP/2.0 200 OK") && text.contains("Allow:"),
            "{text}"
        );
    }
}

#[test]
fn check_config_accepts_the_quickstart_and_names_the_line_of_an_error() {
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml");
    let ok = Command::new(BIN)
        .args(["check-config", quickstart])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok"));

    let dir = std::env::temp_dir().join(format!("switchyard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "node_id = \"x\"\n\n[timers]\nt1 = 10\n").unwrap();
    let err = Command::new(BIN)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!err.status.success());
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(
        msg.contains("bad.toml") && msg.contains("line 4") && msg.contains("t1"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cassandra_tokens_prints_the_offset_mirror_plan() {
    let out = Command::new(BIN)
        .args([
            "cassandra",
            "tokens",
            "--dc",
            "DC0=2",
            "--dc",
            "DC1=2",
            "--partitioner",
            "random",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for token in [
        "85070591730234615865843651857942052864",
        "85070591730234615865843651857942052865",
    ] {
        assert!(text.contains(token), "{text}");
    }
    assert!(text.contains("cassandra-topology.properties"), "{text}");
}

#[test]
fn cassandra_schema_prints_network_topology_cql() {
    let dir = std::env::temp_dir().join(format!("switchyard-cql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        "[store]\nbackend = \"cassandra\"\n[store.cassandra]\ncontact_points = [\"127.0.0.1:9042\"]\nreplication = { DC1 = 3, DC2 = 3 }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["cassandra", "schema", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NetworkTopologyStrategy")
            && text.contains("'DC1': 3")
            && text.contains("'DC2': 3"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
