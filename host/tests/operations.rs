//! Day-one operations against the real binary: registrations listed and
//! kicked, status, transactions and tenants through the admin endpoint
//! (with its token, and refused without it), a configuration reload by
//! SIGHUP and by `switchyard reload`, and registrations kept across a
//! restart on the embedded store. Phones are sipsak on 127.0.67.x.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{BIN, start_with_admin};

const NODE: &str = "127.0.67.1";
const PORT: u16 = 5090;

/// `switchyard ARGS... --admin ADDR --token-file FILE`: success, stdout, stderr.
fn ops(args: &[&str], admin: &str, token: &Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--admin", admin, "--token-file"])
        .arg(token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str], admin: &str, token: &Path) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = ops(&all, admin, token);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// One HTTP/1.1 GET to the admin endpoint: the whole answer as text.
fn http_get(admin: &str, path: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A REGISTER from sipsak for `user@domain`, sent to the node, from `phone`.
fn register(user: &str, domain: &str, phone: &str) {
    let contact = format!("sip:{user}@{phone}:5999");
    let out = Command::new("sipsak")
        .args(["-vvv", "-i", "-U", "-x", "600", "-H", phone, "-C", &contact])
        .args(["-p", &format!("{NODE}:{PORT}")])
        .args(["-s", &format!("sip:{user}@{domain}")])
        .output()
        .expect("sipsak (tests/install-tools.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SIP/2.0 200 OK"),
        "REGISTER {user}@{domain}: {text}"
    );
}

fn aors(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["aor"].as_str().unwrap())
        .collect()
}

fn config(dir: &Path, extra_domain: bool, port: u16) -> String {
    let token = dir.join("token");
    let persist = dir.join("registrations.json");
    let (domains, tenants) = if extra_domain {
        (
            format!(r#"["{NODE}", "ops.test"]"#),
            "[tenants.domains]\n\"ops.test\" = \"acme\"\n\n[tenants.policies.acme]\nmodule = \"builtin:default\"\n",
        )
    } else {
        (format!(r#"["{NODE}"]"#), "")
    };
    format!(
        r#"
listen = ["udp:{NODE}:{port}"]
domains = {domains}

[auth]
enabled = false

[admin]
listen = "{NODE}:0"
token_file = "{}"

[store]
persist = "{}"
persist_interval_ms = 100

[lifecycle]
drain_ms = 2000

{tenants}"#,
        token.display(),
        persist.display()
    )
}

/// Polls `status` until `check` holds: a SIGHUP has no answer to wait for.
fn await_status(admin: &str, token: &Path, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = json(&["status"], admin, token);
        if check(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status never became as expected: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn operators_list_kick_reload_and_restart_keep_registrations() {
    let dir = std::env::temp_dir().join(format!("switchyard-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "an-admin-token-of-some-length\n").unwrap();
    let file = dir.join("node.toml");
    std::fs::write(&file, config(&dir, false, PORT)).unwrap();
    let (mut node, admin) = start_with_admin(&file);
    let admin = admin.to_string();

    register("alice", NODE, "127.0.67.2");
    register("bob", NODE, "127.0.67.3");
    let list = json(&["registrations", "list"], &admin, &token);
    assert_eq!(
        aors(&list),
        [format!("alice@{NODE}"), format!("bob@{NODE}")]
    );
    assert_eq!(
        list[0]["bindings"][0]["contact"],
        "sip:alice@127.0.67.2:5999"
    );
    assert_eq!(list[0]["bindings"][0]["transport"], "udp");
    let (ok, table, _) = ops(&["registrations", "list", "--user", "bob"], &admin, &token);
    assert!(
        ok && table.contains("sip:bob@127.0.67.3:5999") && !table.contains("alice"),
        "{table}"
    );

    // Without the token, or with a wrong one: refused.
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "not-the-admin-token-at-all\n").unwrap();
    let (ok, _, err) = ops(&["registrations", "list"], &admin, &wrong);
    assert!(!ok && err.contains("token"), "{err}");

    let (ok, out, err) = ops(
        &["registrations", "kick", &format!("bob@{NODE}")],
        &admin,
        &token,
    );
    assert!(ok && out.contains("1 binding(s) removed"), "{out}{err}");
    let list = json(&["registrations", "list"], &admin, &token);
    assert_eq!(aors(&list), [format!("alice@{NODE}")]);
    let (ok, _, err) = ops(
        &["registrations", "kick", &format!("bob@{NODE}")],
        &admin,
        &token,
    );
    assert!(!ok && err.contains("no registration"), "{err}");

    let status = json(&["status"], &admin, &token);
    assert_eq!(status["store"], "embedded");
    assert_eq!(status["bindings"], 1);
    assert_eq!(status["domains"], serde_json::json!([NODE]));
    assert_eq!(status["draining"], false);
    let tx = json(&["transactions", "stats"], &admin, &token);
    assert!(tx["requests_total"].as_u64().unwrap() >= 2, "{tx}");
    let metrics = http_get(&admin, "/metrics", Some("an-admin-token-of-some-length"));
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for expected in [
        "# HELP switchyard_requests SIP requests received.\n",
        "# TYPE switchyard_requests counter\n",
        "switchyard_bindings{tenant=\"default\"} 1\n",
        "switchyard_transactions{kind=\"server\"}",
        "switchyard_dropped_total{reason=\"auth\"} 0\n",
        "switchyard_store_latency_seconds_bucket{",
        "switchyard_dialogs 0\n",
        "switchyard_policy_instances_max 1000\n",
        "# TYPE switchyard_policy_instances gauge\n",
        "# EOF\n",
    ] {
        assert!(metrics.contains(expected), "{expected:?} in {metrics}");
    }
    let registers = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("switchyard_store_latency_seconds_count{operation=\"register\"} ")
        })
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(registers, Some(2), "both REGISTERs timed: {metrics}");
    let refused = http_get(&admin, "/metrics", Some("not-the-admin-token"));
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // SIGHUP after adding a domain and its tenant's policy.
    std::fs::write(&file, config(&dir, true, PORT)).unwrap();
    let pid = node.0.id().to_string();
    signal(&pid, "HUP");
    await_status(&admin, &token, |s| {
        s["domains"] == serde_json::json!([NODE, "ops.test"])
    });
    register("carol", "ops.test", "127.0.67.4");
    let tenants = json(&["tenants", "list"], &admin, &token);
    let acme = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .unwrap_or_else(|| panic!("{tenants}"));
    assert_eq!(acme["domains"], serde_json::json!(["ops.test"]));
    assert_eq!(acme["policy"]["source"], "builtin:default");
    let list = json(
        &["registrations", "list", "--tenant", "acme"],
        &admin,
        &token,
    );
    assert_eq!(aors(&list), ["carol@ops.test"]);

    // `switchyard reload`: a broken file is refused and changes nothing; a
    // listener change is reported as needing a restart.
    std::fs::write(&file, "domains = [").unwrap();
    let (ok, _, err) = ops(&["reload"], &admin, &token);
    assert!(!ok && err.contains("refused"), "{err}");
    std::fs::write(&file, config(&dir, true, PORT + 1)).unwrap();
    let (ok, out, err) = ops(&["reload"], &admin, &token);
    assert!(ok, "{err}");
    assert!(out.contains("next start: listen"), "{out}");
    std::fs::write(&file, config(&dir, true, PORT)).unwrap();

    // SIGTERM, then a new process: the registrations are back.
    signal(&pid, "TERM");
    let exit = node.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let (_node, admin) = start_with_admin(&file);
    let admin = admin.to_string();
    let list = json(&["registrations", "list"], &admin, &token);
    assert_eq!(
        aors(&list),
        [format!("alice@{NODE}"), "carol@ops.test".to_string()]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `kill -NAME PID`.
fn signal(pid: &str, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid)
        .status();
    assert!(sent.unwrap().success(), "kill -{name} {pid}");
}

/// SIPp with `args`, its files in `dir`; killed if the test ends first.
fn sipp(dir: &Path, args: &[String]) -> common::Running {
    let child = Command::new("sipp")
        .args(args)
        .args(["-nostdin", "-trace_err", "-trace_screen"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp (tests/install-tools.sh installs sip-tester)");
    common::Running(child)
}

/// `-key NAME VALUE` for each pair.
fn keys(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["-key".to_string(), k.to_string(), v.to_string()])
        .collect()
}

fn scenario(name: &str) -> String {
    format!("{}/../tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn sigterm_under_sipp_load_lets_every_call_in_progress_hang_up_then_exits() {
    const NODE: &str = "127.0.69.1";
    const UAS: &str = "127.0.69.2";
    const CALLER: &str = "127.0.69.3";
    let dir = std::env::temp_dir().join(format!("switchyard-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "an-admin-token-of-some-length\n").unwrap();
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        format!(
            r#"
listen = ["udp:{NODE}:5090"]
domains = ["{NODE}"]
[auth]
enabled = false
[admin]
listen = "{NODE}:0"
token_file = "{}"
[lifecycle]
drain_ms = 15000
[dialogs.cdr]
file = "{}"
"#,
            token.display(),
            dir.join("cdr.jsonl").display()
        ),
    )
    .unwrap();
    let (mut node, admin) = start_with_admin(&file);
    let admin = admin.to_string();
    // bob's phone registers its SIPp callee's address (from the caller's
    // address, as the e2e suite does: no NAT in between).
    std::fs::write(dir.join("users.csv"), "SEQUENTIAL\nbob;\n").unwrap();
    let registered = sipp(
        &dir,
        &[
            format!("{NODE}:5090"),
            "-sf".into(),
            scenario("uac_register.xml"),
            "-i".into(),
            CALLER.into(),
            "-bind_local".into(),
            "-m".into(),
            "1".into(),
            "-inf".into(),
            "users.csv".into(),
        ]
        .into_iter()
        .chain(keys(&[
            ("domain", NODE),
            ("uas", &format!("{UAS}:5070")),
            ("expires", "300"),
        ]))
        .collect::<Vec<_>>(),
    )
    .0
    .wait()
    .unwrap();
    assert!(registered.success(), "bob registered: {registered:?}");

    // bob's phone, then 20 calls that each talk for 3 s before the BYE.
    let calls = 20;
    let mut uas = sipp(
        &dir,
        &[
            "-sf".into(),
            scenario("uas_answer.xml"),
            "-i".into(),
            UAS.into(),
            "-p".into(),
            "5070".into(),
            "-bind_local".into(),
            "-m".into(),
            calls.to_string(),
        ],
    );
    // SIPp is up once its socket is bound (/proc/net/udp lists it).
    let local = format!("{:08X}:{:04X}", u32::from_le_bytes([127, 0, 69, 2]), 5070);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .contains(&local)
    {
        assert!(Instant::now() < deadline, "SIPp's callee never bound");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut uac = sipp(
        &dir,
        &[
            format!("{NODE}:5090"),
            "-sf".into(),
            scenario("uac_call.xml"),
            "-i".into(),
            CALLER.into(),
            "-bind_local".into(),
            "-m".into(),
            calls.to_string(),
            "-r".into(),
            "20".into(),
            "-d".into(),
            "3000".into(),
            "-inf".into(),
            "users.csv".into(),
        ]
        .into_iter()
        .chain(keys(&[("domain", NODE)]))
        .collect::<Vec<_>>(),
    );
    // Every call answered and talking: then the node is told to stop.
    await_status(&admin, &token, |s| s["dialogs"] == calls);
    let counted = json(&["calls"], &admin, &token);
    assert_eq!(counted[0]["node"], calls, "{counted}");
    // An operator follows the CDRs while the calls hang up.
    let tail = Command::new(BIN)
        .args(["cdr", "tail", "--follow", "--admin", &admin, "--token-file"])
        .arg(&token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = node.0.id().to_string();
    let signalled = Instant::now();
    signal(&pid, "TERM");
    let caller = uac.0.wait().unwrap();
    let callee = uas.0.wait().unwrap();
    let exit = node.0.wait().unwrap();
    let stopped_after = signalled.elapsed();
    assert!(
        caller.success(),
        "every call that started before SIGTERM completed, BYE included (SIPp exit {caller:?}; {})",
        std::fs::read_to_string(dir.join("uac_call_errors.log")).unwrap_or_default()
    );
    assert!(callee.success(), "the callee saw every BYE: {callee:?}");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        stopped_after < Duration::from_secs(15),
        "the node stopped within drain_ms, after the calls: {stopped_after:?}"
    );
    assert!(
        stopped_after > Duration::from_secs(1),
        "the node waited for the calls to hang up: {stopped_after:?}"
    );
    // One CDR per call in the file, written before the node exited; `cdr
    // tail -f` printed them as they came (those of its last half-second
    // poll may have come after it: it exits when the node is gone).
    let file = std::fs::read_to_string(dir.join("cdr.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), calls as usize, "{file}");
    for r in &records {
        assert_eq!(r["end_reason"], "caller-bye", "{r}");
        assert!(r["duration_ms"].as_u64().unwrap() >= 3000, "{r}");
    }
    let followed = tail.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&followed.stdout);
    let ids = |text: &str| {
        let mut ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
            .collect();
        ids.sort();
        ids
    };
    let (followed, written) = (ids(&followed), ids(&file));
    assert!(
        !followed.is_empty(),
        "cdr tail -f printed the CDRs as they came"
    );
    assert!(
        followed.iter().all(|id| written.contains(id)),
        "{followed:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
