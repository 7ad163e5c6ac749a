//! The Debian package as an operator gets it. `cargo deb` (cargo-deb, which
//! tests/install-tools.sh installs) packages the debug `switchyard` binary
//! this `cargo test` built (stripped; no release build: too slow for CI),
//! dpkg installs it on this machine, the installed binary accepts the
//! installed conffile (`check-config`) and, started by hand as the package's
//! `switchyard` user with the unit's flags (no systemd runs here), answers
//! sipsak's REGISTER with 200 OK on loopback; SIGTERM stops it with status 0.
//! `dpkg --purge` then leaves the machine as it was (the test also removes
//! the `switchyard` user when it created it: the package keeps its user on
//! purge, as Debian packages do).
//!
//! Needs root and dpkg, as CI has; says it is skipped otherwise.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PACKAGE: &str = "switchyard";
const USER: &str = "switchyard";
const BIN: &str = "/usr/bin/switchyard";
const CONFFILE: &str = "/etc/switchyard/switchyard.toml";
const UNIT: &str = "/usr/lib/systemd/system/switchyard.service";
const STATE_DIR: &str = "/var/lib/switchyard";
/// The node's address, and the one sipsak puts in its Via and Contact.
const NODE_IP: &str = "127.0.0.71";
const PHONE_IP: &str = "127.0.0.72";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The target directory this test was built in:
/// `<target>/debug/deps/package_deb-<hash>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("the test runs from <target>/debug/deps")
        .to_path_buf()
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (dpkg -i needs root; CI runs as root)");
    }
    if !on_path("dpkg") || !on_path("dpkg-deb") {
        return Some("dpkg is not installed (not a Debian-based system)");
    }
    None
}

fn text(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `cmd` and returns its output, panicking (with it) when it fails.
fn run(what: &str, cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(output.status.success(), "{what} failed: {}", text(&output));
    output
}

fn package_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("not-installed")
        })
}

/// `getent passwd switchyard`: `[name, x, uid, gid, gecos, home, shell]`.
fn passwd_entry() -> Option<Vec<String>> {
    let out = Command::new("getent")
        .args(["passwd", USER])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_string)
            .collect()
    })
}

/// dpkg, waiting out another dpkg or apt holding its lock.
fn dpkg(what: &str, args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let output = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run dpkg: {e}"));
        if output.status.success() {
            return output;
        }
        let locked = String::from_utf8_lossy(&output.stderr).contains("lock");
        if !locked || Instant::now() > deadline {
            panic!("{what} (dpkg {args:?}) failed: {}", text(&output));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Puts the machine back as the test found it, also when the test fails
/// half-way: stops the node, purges the package, removes the user the
/// package created, deletes the work directory.
struct Cleanup {
    work: PathBuf,
    node: Option<Child>,
    remove_user: bool,
}

impl Cleanup {
    fn purge(&mut self) {
        if let Some(mut node) = self.node.take() {
            let _ = node.kill();
            let _ = node.wait();
        }
        if package_installed() {
            dpkg("dpkg --purge", &["--purge", PACKAGE]);
        }
        if self.remove_user && passwd_entry().is_some() {
            // userdel also removes the user's own group.
            run("userdel switchyard", Command::new("userdel").arg(USER));
        }
        self.remove_user = false;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Best effort, without a second panic hiding the first.
            if let Some(mut node) = self.node.take() {
                let _ = node.kill();
                let _ = node.wait();
            }
            let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
            if self.remove_user {
                let _ = Command::new("userdel").arg(USER).output();
            }
        } else {
            self.purge();
        }
        let _ = fs::remove_dir_all(&self.work);
    }
}

/// The `Key=value` lines of a systemd unit, in order (keys repeat).
fn unit_directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn directive<'a>(directives: &'a [(String, String)], key: &str) -> &'a str {
    let values: Vec<&str> = directives
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "{key}= appears once in {UNIT}: {values:?}");
    values[0]
}

/// A loopback port of four digits that is free on [`NODE_IP`] (sipsak
/// 0.9.8 cuts a five-digit port of `-s` to four in the request URI).
fn free_port() -> u16 {
    (5070..5999)
        .find(|port| std::net::UdpSocket::bind((NODE_IP, *port)).is_ok())
        .expect("a free UDP port on 127.0.0.71 between 5070 and 5999")
}

#[test]
fn deb_package_installs_checks_its_config_and_registers() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED deb_package_installs_checks_its_config_and_registers: {why}");
        return;
    }
    let started = Instant::now();
    let repo = repo();
    let target = target_dir();
    for tool in ["sipsak", "setpriv", "useradd", "userdel", "getent"] {
        assert!(
            on_path(tool),
            "{tool} is missing: run `bash tests/install-tools.sh`"
        );
    }
    let cargo_deb = Command::new(env!("CARGO"))
        .args(["deb", "--version"])
        .output();
    assert!(
        cargo_deb.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: run `bash tests/install-tools.sh` ({cargo_deb:?})"
    );
    assert!(
        !package_installed(),
        "the {PACKAGE} package is installed already; this test installs and purges it: \
         `dpkg --purge {PACKAGE}` first"
    );

    // The binary `cargo test --workspace` built for host's own tests. When
    // only this test was built, build it (cargo's lock is free while tests run).
    let built = target.join("debug").join("switchyard");
    if !built.is_file() {
        eprintln!("{} is missing: building it", built.display());
        run(
            "cargo build -p switchyard",
            Command::new(env!("CARGO"))
                .args(["build", "-p", "switchyard", "--bin", "switchyard"])
                .current_dir(&repo)
                .env("CARGO_TARGET_DIR", &target),
        );
    }

    let work = std::env::temp_dir().join(format!("switchyard-deb-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).expect("work dir");
    // The node, running as the switchyard user, reads its config from here.
    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).expect("chmod work dir");
    let mut cleanup = Cleanup {
        work: work.clone(),
        node: None,
        remove_user: passwd_entry().is_none(),
    };

    // Package: the dev profile's binary as it is (`--no-build`), stripped
    // (450 MB unstripped), with quick compression; no dbgsym package.
    let t = Instant::now();
    run(
        "cargo deb",
        Command::new(env!("CARGO"))
            .args(["deb", "-p", "switchyard", "--no-build", "--profile", "dev"])
            .args(["--no-dbgsym", "--strip", "--fast", "--output"])
            .arg(&work)
            .current_dir(&repo)
            .env("CARGO_TARGET_DIR", &target),
    );
    let deb = fs::read_dir(&work)
        .expect("read work dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb wrote a .deb");
    let size = fs::metadata(&deb).expect("deb").len();
    eprintln!(
        "built {} ({:.1} MB) in {:.1?}",
        deb.display(),
        size as f64 / 1e6,
        t.elapsed()
    );
    assert!(
        size < 60_000_000,
        "the .deb is {size} bytes: is the binary stripped?"
    );
    let field = |name: &str| {
        let out = run(
            "dpkg-deb -f",
            Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(field("Package"), PACKAGE);
    let depends = field("Depends");
    assert!(
        depends.contains("libc6") && depends.contains("passwd"),
        "Depends: {depends}"
    );
    let conffiles = run(
        "dpkg-deb -I conffiles",
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(String::from_utf8_lossy(&conffiles.stdout).trim(), CONFFILE);
    let contents = run("dpkg-deb -c", Command::new("dpkg-deb").arg("-c").arg(&deb));
    let contents = String::from_utf8_lossy(&contents.stdout);
    for path in [BIN, CONFFILE, UNIT] {
        assert!(
            contents.lines().any(|l| l.ends_with(&format!(".{path}"))),
            "{path} is not in the package:\n{contents}"
        );
    }
    assert!(
        !contents.contains("logrotate"),
        "no logrotate: the journal keeps the logs"
    );

    // Install.
    let out = dpkg("dpkg -i", &["-i", deb.to_str().expect("utf-8 path")]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    assert!(package_installed(), "dpkg -i left {PACKAGE} not installed");

    // The system user the postinst created, its state directory, and the
    // configuration directory only root and that user's group can read.
    let user = passwd_entry().expect("the package created the switchyard user");
    let uid: u32 = user[2].parse().expect("uid");
    let gid: u32 = user[3].parse().expect("gid");
    assert!(uid < 1000, "a system user: {user:?}");
    assert_eq!(user[5], STATE_DIR, "home: {user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "shell: {user:?}");
    let state = fs::metadata(STATE_DIR).expect("the postinst created /var/lib/switchyard");
    assert!(state.is_dir() && state.uid() == uid && state.gid() == gid);
    let etc = fs::metadata("/etc/switchyard").expect("/etc/switchyard");
    assert_eq!((etc.uid(), etc.gid(), etc.mode() & 0o777), (0, gid, 0o750));

    // The unit as the issue specifies it.
    let unit = fs::read_to_string(UNIT).expect("the unit is installed");
    let directives = unit_directives(&unit);
    let d = |key: &str| directive(&directives, key);
    assert_eq!(
        d("ExecStart"),
        "/usr/bin/switchyard --log-format json run --config /etc/switchyard/switchyard.toml"
    );
    assert_eq!(d("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(d("KillSignal"), "SIGTERM");
    assert_eq!(d("User"), USER);
    assert_eq!(d("StateDirectory"), "switchyard");
    assert_eq!(d("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(d("MemoryDenyWriteExecute"), "no", "wasmtime JIT-compiles");
    assert_eq!(
        d("RestrictAddressFamilies"),
        "AF_INET AF_INET6 AF_UNIX AF_NETLINK"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_eq!(d(key), value, "{key}=");
    }
    let nofile: u64 = d("LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(nofile >= 65536, "LimitNOFILE={nofile}");
    if on_path("systemd-analyze") {
        run(
            "systemd-analyze verify",
            Command::new("systemd-analyze").args(["verify", UNIT]),
        );
    }

    // check-config accepts the packaged conffile (every key commented out:
    // the defaults), as root and as the service user.
    let checked = run(
        "check-config",
        Command::new(BIN).args(["check-config", CONFFILE]),
    );
    let effective = String::from_utf8_lossy(&checked.stdout);
    assert!(effective.contains(": ok"), "{}", text(&checked));
    run(
        "check-config as switchyard",
        Command::new("setpriv")
            .args(["--reuid", USER, "--regid", USER, "--clear-groups", BIN])
            .args(["check-config", CONFFILE]),
    );
    // The stop timeout leaves room for the drain ([lifecycle] drain_ms).
    let settings: toml::Table = effective.parse().expect("check-config prints TOML");
    let drain_ms = settings["lifecycle"]["drain_ms"]
        .as_integer()
        .expect("lifecycle.drain_ms");
    let stop_secs: i64 = d("TimeoutStopSec").parse().expect("TimeoutStopSec in s");
    assert!(
        stop_secs * 1000 > drain_ms,
        "TimeoutStopSec={stop_secs} must exceed drain_ms={drain_ms}"
    );
    // Every key line of the conffile is commented out but one: the
    // registrations are kept across restarts in the state directory.
    let conffile = fs::read_to_string(CONFFILE).expect("conffile");
    let active: Vec<&str> = conffile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .collect();
    assert_eq!(
        active,
        [format!("persist = \"{STATE_DIR}/registrations.json\"")],
        "uncommented keys in {CONFFILE}"
    );

    // Run the installed binary as the switchyard user with the unit's
    // global flags and the installed config, copied with the admin endpoint
    // off (its port, 127.0.0.1:9060, is not this test's); listener, domain
    // and no digest come from `run`'s flags.
    let config = work.join("switchyard.toml");
    let copied = conffile.replacen("\n[admin]\n", "\n[admin]\nlisten = \"off\"\n", 1);
    assert_ne!(copied, conffile, "{CONFFILE} has an [admin] section");
    fs::write(&config, copied).expect("write config copy");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod config");
    let port = free_port();
    let mut node = Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--clear-groups", BIN])
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .args(["--listen", &format!("udp:{NODE_IP}:{port}")])
        .args(["--domain", NODE_IP, "--no-auth"])
        .current_dir(STATE_DIR)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the installed switchyard");
    let (tx, rx) = mpsc::channel();
    let stdout = node.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let pid = node.id();
    cleanup.node = Some(node);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log
        .iter()
        .any(|l: &String| l.contains("listening") && l.contains(&port.to_string()))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                assert!(
                    line.starts_with('{') && line.ends_with('}'),
                    "--log-format json logs JSON objects: {line}"
                );
                log.push(line);
            }
            Err(_) => panic!(
                "the installed switchyard did not listen:\n{}",
                log.join("\n")
            ),
        }
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let real_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid line");
    assert_eq!(real_uid, uid.to_string(), "runs as the switchyard user");

    // A REGISTER from sipsak (usrloc mode, one registration, Expires 60).
    let contact = format!("sip:alice@{PHONE_IP}:5999");
    let sipsak = run(
        "sipsak REGISTER",
        Command::new("sipsak")
            .args([
                "-vvv", "-i", "-U", "-x", "60", "-H", PHONE_IP, "-C", &contact,
            ])
            .args(["-s", &format!("sip:alice@{NODE_IP}:{port}")]),
    );
    let answer = String::from_utf8_lossy(&sipsak.stdout);
    assert!(answer.contains("SIP/2.0 200 OK"), "{}", text(&sipsak));
    assert!(
        answer.contains(&format!("Contact: <{contact}>;expires=60")),
        "the 200 OK lists the binding: {}",
        text(&sipsak)
    );

    // SIGTERM, as `systemctl stop` sends: it drains (nothing in progress)
    // and exits 0, well within TimeoutStopSec.
    // SAFETY: kill(2) on the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let node = cleanup.node.as_mut().expect("node");
    let deadline = Instant::now() + Duration::from_secs(stop_secs as u64);
    let exit = loop {
        if let Some(exit) = node.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "switchyard did not stop within TimeoutStopSec={stop_secs} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "SIGTERM: {exit}");
    cleanup.node = None;
    // The stop saved the registration where the packaged config says.
    let saved = fs::read_to_string(format!("{STATE_DIR}/registrations.json"))
        .expect("the registrations were saved in the state directory");
    assert!(saved.contains(&contact), "{saved}");

    // Purge, and nothing of the package is left.
    let created_user = cleanup.remove_user;
    cleanup.purge();
    assert!(!package_installed(), "{PACKAGE} is still installed");
    for path in [BIN, CONFFILE, UNIT, STATE_DIR, "/etc/switchyard"] {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    assert!(
        !Path::new("/var/lib/systemd/deb-systemd-helper-enabled/switchyard.service.dsh-also")
            .exists(),
        "deb-systemd-helper state is left after the purge"
    );
    if created_user {
        assert!(passwd_entry().is_none(), "the switchyard user is left");
    }
    eprintln!("package_deb: passed in {:.1?}", started.elapsed());
}
