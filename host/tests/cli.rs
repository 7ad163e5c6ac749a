//! The `switchyard` binary as an operator runs it: `run` from flags alone,
//! answered by a real SIP tool (sipsak), `check-config` on good and bad
//! files, and `policy load` / `policy list` against a running node.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{BIN, start, start_with_admin};

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

/// `switchyard policy ARGS...`: exit status, stdout, stderr.
fn policy(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("policy").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_load_and_list_talk_to_a_running_node() {
    let dir = std::env::temp_dir().join(format!("switchyard-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        r#"
listen = ["udp:127.0.66.1:0"]
domains = ["cli.test"]

[admin]
listen = "127.0.66.1:0"

[tenants.domains]
"cli.test" = "cli"

[tenants.policies.cli]
module = "builtin:default"
failure = "fail-open"

[[tenants.chains.chained]]
name = "limits"
module = "builtin:rate-limit"
config = { requests_per_second = 100 }

[[tenants.chains.chained]]
name = "plan"
module = "builtin:default"
"#,
    )
    .unwrap();
    let (_node, admin) = start_with_admin(&config);
    let admin = admin.to_string();
    let pbx = switchyard::policy::bundled::artifact_dir().join("hosted_pbx.wasm");
    let pbx = pbx.to_str().unwrap();

    let (ok, out, err) = policy(&["load", "--tenant", "cli", pbx, "--admin", &admin]);
    assert!(ok, "policy load failed: {err}");
    // "tenant cli: version <hash> live after <ms> ms"
    let version = out
        .strip_prefix("tenant cli: version ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected output: {out}"))
        .to_string();
    assert!(
        out.contains(" live after ") && out.trim_end().ends_with(" ms"),
        "{out}"
    );

    let (ok, out, err) = policy(&["list", "--admin", &admin]);
    assert!(ok, "policy list failed: {err}");
    assert!(out.starts_with("TENANT"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("cli "))
        .unwrap_or_else(|| panic!("no row for tenant cli: {out}"));
    for expected in [version.as_str(), "fail-open", pbx] {
        assert!(row.contains(expected), "{expected:?} not in {row:?}");
    }

    // One link of a chain, swapped alone.
    let (ok, out, err) = policy(&[
        "load", "--tenant", "chained", "--link", "plan", pbx, "--admin", &admin,
    ]);
    assert!(ok, "policy load --link failed: {err}");
    assert!(out.starts_with("tenant chained: version "), "{out}");
    let (_, out, _) = policy(&["list", "--admin", &admin]);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .to_string()
    };
    assert!(row("chained/plan ").contains(pbx), "{out}");
    assert!(
        row("chained/limits ").contains("builtin:rate-limit"),
        "{out}"
    );

    // A file that is not a component: refused, the loaded version stays.
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"not a component").unwrap();
    let (ok, _, err) = policy(&[
        "load",
        "--tenant",
        "cli",
        bad.to_str().unwrap(),
        "--admin",
        &admin,
    ]);
    assert!(!ok, "a bad module must fail the command");
    assert!(
        err.contains("not a valid WebAssembly component") && err.contains("bad.wasm"),
        "{err}"
    );
    let (_, out, _) = policy(&["list", "--admin", &admin]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cli ") && l.contains(&version)),
        "{out}"
    );

    let missing = dir.join("missing.wasm");
    let (ok, _, err) = policy(&[
        "load",
        "--tenant",
        "cli",
        missing.to_str().unwrap(),
        "--admin",
        &admin,
    ]);
    assert!(!ok && err.contains("missing.wasm"), "{err}");

    // Nobody listening: the message says where it tried and what to check.
    let (ok, _, err) = policy(&["list", "--admin", "127.0.66.9:9"]);
    assert!(
        !ok && err.contains("cannot reach the admin endpoint at 127.0.66.9:9"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `switchyard user add|passwd|list|remove` on a subscriber file: HA1s
/// only, the password from stdin with `-`, errors that say what is wrong.
#[test]
fn user_commands_edit_the_subscriber_file() {
    let dir = std::env::temp_dir().join(format!("sy-cli-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("subscribers.toml");
    let user = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(BIN)
            .arg("user")
            .args(args)
            .args(["--file", file.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard user");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    };
    assert!(
        user(
            &["add", "--domain", "A.test", "alice", "--password", "pw-one"],
            None
        )
        .status
        .success()
    );
    assert!(
        user(
            &["add", "--domain", "b.test", "bob", "--password", "-"],
            Some("pw-two\n")
        )
        .status
        .success()
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("pw-one") && !text.contains("pw-two"),
        "{text}"
    );
    let list = user(&["list"], None);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "a.test\talice\nb.test\tbob\n"
    );
    assert!(
        user(
            &[
                "passwd",
                "--domain",
                "a.test",
                "alice",
                "--password",
                "pw-3"
            ],
            None
        )
        .status
        .success()
    );
    let missing = user(
        &["passwd", "--domain", "a.test", "carol", "--password", "x"],
        None,
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user carol in a.test"));
    assert!(
        user(&["remove", "--domain", "a.test", "alice"], None)
            .status
            .success()
    );
    let list = user(&["list", "--domain", "a.test"], None);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `switchyard user --admin ADDR` provisions a running node: the node
/// writes its subscriber file (HA1s, computed by the CLI) and serves the
/// list back.
#[test]
fn user_commands_through_a_running_nodes_admin_endpoint() {
    let dir = std::env::temp_dir().join(format!("switchyard-user-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.toml");
    let file = dir.join("subscribers.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"udp:127.0.66.2:0\"]\ndomains = [\"cli.test\"]\n\
             [admin]\nlisten = \"127.0.66.2:0\"\n\
             [auth]\nsubscribers = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap();
    let (_node, admin) = start_with_admin(&config);
    let admin = admin.to_string();
    let user = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("user")
            .args(args)
            .args(["--admin", &admin])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = user(&[
        "add",
        "--domain",
        "cli.test",
        "alice",
        "--password",
        "s3cret",
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("alice") && !text.contains("s3cret"), "{text}");
    let (ok, out, _) = user(&["list"]);
    assert!(ok);
    assert_eq!(out, "cli.test\talice\n");
    let (ok, _, err) = user(&["remove", "--domain", "cli.test", "bob"]);
    assert!(!ok && err.contains("no user bob in cli.test"), "{err}");
    let (ok, _, err) = user(&["remove", "--domain", "cli.test", "alice"]);
    assert!(ok, "{err}");
    assert_eq!(user(&["list"]).1, "");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut node = start(
        &[
            "--listen",
            "udp:127.0.0.63:5090",
            "--domain",
            "switchyard.test",
        ],
        1,
    );
    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Nothing in progress: it stops at once, and cleanly.
    let status = loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn json_logs_are_one_object_per_line_and_text_logs_have_no_colours_off_a_terminal() {
    for (format, port) in [("json", "5091"), ("text", "5092")] {
        let mut child = Command::new(BIN)
            .args(["--log", "info", "--log-format", format, "run", "--listen"])
            .arg(format!("udp:127.0.0.64:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn switchyard");
        let out = child.stdout.take().unwrap();
        let line = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("listening"))
            .expect("a listening line");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!line.contains('\u{1b}'), "no escape codes: {line:?}");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
            assert_eq!(v["level"], "INFO", "{line}");
            assert!(
                v["fields"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("listening"),
                "{line}"
            );
        }
    }
}

#[test]
fn message_log_lines_carry_call_id_branch_and_tenant() {
    let mut child = Command::new(BIN)
        .args(["--log", "debug", "--log-format", "json", "run", "--no-auth"])
        .args(["--listen", "udp:127.0.0.65:5093", "--domain", "127.0.0.65"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn switchyard");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_with = |needle: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            break line;
        }
    };
    next_with("listening");
    let sipsak = Command::new("sipsak")
        .args(["-vvv", "-i", "-U", "-x", "60", "-H", "127.0.0.66"])
        .args([
            "-C",
            "sip:alice@127.0.0.66:5999",
            "-s",
            "sip:alice@127.0.0.65:5093",
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&sipsak.stdout).into_owned();
    assert!(answer.contains("SIP/2.0 200 OK"), "{answer}");
    let line = next_with("REGISTER stored");
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    let span = &v["span"];
    assert_eq!(span["name"], "sip", "{line}");
    assert_eq!(span["tenant"], "default", "{line}");
    let call_id = span["call_id"].as_str().unwrap_or_default();
    assert!(
        !call_id.is_empty() && answer.contains(&format!("Call-ID: {call_id}")),
        "the REGISTER's Call-ID: {line}"
    );
    assert!(
        span["branch"]
            .as_str()
            .unwrap_or_default()
            .starts_with("z9hG4bK"),
        "{line}"
    );
}
