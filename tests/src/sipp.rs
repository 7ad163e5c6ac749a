//! SIPp (Debian `sip-tester`) driven from integration tests.
//!
//! A [`Sipp`] is a command line being built: the scenario (a file under
//! `tests/sipp/`), addresses, transport, call count and rate, and the
//! `-key` values and CSV users the scenario reads. [`Sipp::spawn`] starts it
//! with its statistics, screen and error traces sent to a private directory;
//! [`SippChild::wait`] (a caller) or [`SippChild::stop`] (a callee) ends it
//! and reads SIPp's verdict into a [`SippResult`].
//!
//! ```no_run
//! # use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! # use std::time::Duration;
//! # use switchyard_tests::sipp::*;
//! let ip = |last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
//! let proxy = SocketAddr::new(ip(10), 5060);
//! // A callee; spawn() returns once its socket is bound.
//! let uas = Sipp::uas(UAS_ANSWER).local(ip(30), 5070).spawn();
//! Sipp::uac(UAC_REGISTER)
//!     .remote(proxy)
//!     .local(ip(40), 5080)
//!     .users(["alice"])
//!     .set("domain", "bench.test")
//!     .set("uas", "127.0.0.30:5070")
//!     .set("expires", "600")
//!     .spawn()
//!     .wait()
//!     .assert_success();
//! Sipp::uac(UAC_CALL)
//!     .remote(proxy)
//!     .local(ip(40), 5080)
//!     .users(["alice"])
//!     .set("domain", "bench.test")
//!     .timeout(Duration::from_secs(10))
//!     .spawn()
//!     .wait()
//!     .assert_calls(1, 0);
//! uas.stop().assert_calls(1, 0);
//! ```
//!
//! SIPp's exit code is 0 when every call succeeded, 1 when at least one
//! failed, 99 when it ended without processing a call, 255/254 on a fatal
//! (e.g. bind) error. Set `SIPP_KEEP=1` to keep each run's directory
//! (traces, and `messages.log` when [`Sipp::trace_messages`] is on).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// REGISTER `field0@domain` -> Contact `field0@uas`. Keys: domain, uas, expires.
pub const UAC_REGISTER: &str = "uac_register.xml";
/// As [`UAC_REGISTER`] with `;q=` on the Contact. Keys: domain, uas, expires, q.
pub const UAC_REGISTER_Q: &str = "uac_register_q.xml";
/// REGISTER with `Expires: 0` for the same Contact. Keys: domain, uas.
pub const UAC_UNREGISTER: &str = "uac_unregister.xml";
/// INVITE `field0@domain` -> 200 -> ACK -> BYE through the route set. Key: domain.
pub const UAC_CALL: &str = "uac_call.xml";
/// INVITE -> 180 -> CANCEL -> 200 + 487 -> ACK. Key: domain.
pub const UAC_CANCEL: &str = "uac_cancel.xml";
/// The same INVITE twice, then a normal call. Key: domain. Needs [`Sipp::no_retrans`].
pub const UAC_INVITE_TWICE: &str = "uac_invite_twice.xml";
/// Template behind [`Sipp::uac_expect`].
pub const UAC_INVITE_EXPECT_TEMPLATE: &str = "uac_invite_expect.xml.in";
/// One INVITE to `target@domain` per call, sent and forgotten (a flood;
/// `-r` is the offered rate). Keys: domain, target. Use [`Sipp::no_retrans`].
pub const UAC_FLOOD: &str = "uac_flood.xml";
/// Callee: 100, 180, 200 -> ACK -> BYE -> 200.
pub const UAS_ANSWER: &str = "uas_answer.xml";
/// Callee: 100, 180, then waits for CANCEL -> 200 + 487 -> ACK.
pub const UAS_RING_FOREVER: &str = "uas_ring_forever.xml";
/// Callee: 100, 486 -> ACK.
pub const UAS_BUSY: &str = "uas_busy.xml";
/// Callee: 100 only; the proxy's CANCEL -> 200 + 487 -> ACK.
pub const UAS_NO_ANSWER: &str = "uas_no_answer.xml";
/// Callee for [`UAC_INVITE_TWICE`]: fails on a second INVITE. Needs
/// [`Sipp::no_retrans`] and `.calls(1)`.
pub const UAS_SINGLE_INVITE: &str = "uas_single_invite.xml";
/// Template behind [`Sipp::uas_reject`].
pub const UAS_REJECT_TEMPLATE: &str = "uas_reject.xml.in";

/// How long a callee gets to bind its socket.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SIPp gets to wind down after each SIGUSR1.
const STOP_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

/// `tests/sipp`, where the scenarios live.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// The SIP transport SIPp uses: one socket (`-t u1` / `-t t1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SippTransport {
    Udp,
    Tcp,
}

impl SippTransport {
    fn flag(self) -> &'static str {
        match self {
            SippTransport::Udp => "u1",
            SippTransport::Tcp => "t1",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

#[derive(Clone, Debug)]
enum Scenario {
    File(PathBuf),
    /// Rendered from a template; written into the run directory at spawn.
    Rendered {
        name: String,
        xml: String,
    },
}

impl Scenario {
    fn name(&self) -> String {
        match self {
            Scenario::File(path) => path
                .file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned()),
            Scenario::Rendered { name, .. } => name.clone(),
        }
    }
}

/// A SIPp command line being built. See the module docs.
#[derive(Clone, Debug)]
#[must_use]
pub struct Sipp {
    role: Role,
    scenario: Scenario,
    remote: Option<SocketAddr>,
    local: Option<(IpAddr, u16)>,
    transport: SippTransport,
    calls: Option<u64>,
    rate: Option<u32>,
    limit: Option<u32>,
    pause: Option<Duration>,
    timeout: Duration,
    keys: Vec<(String, String)>,
    users: Option<Vec<String>>,
    inf: Option<PathBuf>,
    no_retrans: bool,
    trace_messages: bool,
    extra: Vec<String>,
}

impl Sipp {
    /// A caller (client mode) running `scenario`: a file name in
    /// [`scenario_dir`], or any path.
    pub fn uac(scenario: impl AsRef<Path>) -> Self {
        Self::new(Role::Client, Scenario::File(resolve(scenario.as_ref())))
    }

    /// A callee (server mode): it answers calls until it has done
    /// [`calls`](Self::calls) of them or is [stopped](SippChild::stop).
    /// Needs [`local`](Self::local) with a fixed port.
    pub fn uas(scenario: impl AsRef<Path>) -> Self {
        Self::new(Role::Server, Scenario::File(resolve(scenario.as_ref())))
    }

    /// A caller whose INVITE must end with final response `code` (then ACKs
    /// it); any other final response fails the call. Rendered from
    /// `uac_invite_expect.xml.in`, because SIPp cannot take a response code
    /// from its command line. Key: domain.
    pub fn uac_expect(code: u16) -> Self {
        assert!(
            (300..700).contains(&code),
            "uac_expect wants a failure code, got {code}"
        );
        Self::new(
            Role::Client,
            render(
                UAC_INVITE_EXPECT_TEMPLATE,
                &format!("uac_invite_expect_{code}"),
                &[("@CODE@", &code.to_string())],
            ),
        )
    }

    /// A callee answering every INVITE `100` then `code reason` (and
    /// waiting for the ACK), e.g. a carrier gateway that is out of service.
    /// Rendered from `uas_reject.xml.in`.
    pub fn uas_reject(code: u16, reason: &str) -> Self {
        assert!(
            (300..700).contains(&code),
            "uas_reject wants a failure code, got {code}"
        );
        Self::new(
            Role::Server,
            render(
                UAS_REJECT_TEMPLATE,
                &format!("uas_reject_{code}"),
                &[("@CODE@", &code.to_string()), ("@REASON@", reason)],
            ),
        )
    }

    /// Runs a variant of the scenario with the text `old` replaced by
    /// `new`, e.g. a callee answering with its GRUU as Contact. Panics when
    /// `old` is not in the scenario, so a renamed line cannot go unnoticed.
    pub fn replacing(mut self, old: &str, new: &str) -> Self {
        let name = self.scenario.name();
        let xml = match &self.scenario {
            Scenario::File(path) => fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
            Scenario::Rendered { xml, .. } => xml.clone(),
        };
        assert!(xml.contains(old), "{name} has no {old:?} to replace");
        self.scenario = Scenario::Rendered {
            name,
            xml: xml.replace(old, new),
        };
        self
    }

    fn new(role: Role, scenario: Scenario) -> Self {
        Sipp {
            role,
            scenario,
            remote: None,
            local: None,
            transport: SippTransport::Udp,
            calls: None,
            rate: None,
            limit: None,
            pause: None,
            timeout: Duration::from_secs(30),
            keys: Vec::new(),
            users: None,
            inf: None,
            no_retrans: false,
            trace_messages: false,
            extra: Vec::new(),
        }
    }

    /// Where a caller sends every request (the proxy). Required for a caller.
    pub fn remote(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }

    /// The address SIPp binds (`-i ip -p port`, and `-bind_local`). Port 0
    /// lets the system choose (callers only).
    pub fn local(mut self, ip: IpAddr, port: u16) -> Self {
        self.local = Some((ip, port));
        self
    }

    pub fn transport(mut self, transport: SippTransport) -> Self {
        self.transport = transport;
        self
    }

    /// Stop after this many calls (`-m`). A caller defaults to one call.
    pub fn calls(mut self, n: u64) -> Self {
        self.calls = Some(n);
        self
    }

    /// New calls per second (`-r`).
    pub fn rate(mut self, calls_per_second: u32) -> Self {
        self.rate = Some(calls_per_second);
        self
    }

    /// At most this many calls open at once (`-l`).
    pub fn limit(mut self, concurrent: u32) -> Self {
        self.limit = Some(concurrent);
        self
    }

    /// Length of the scenario's `<pause/>` steps (`-d`).
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = Some(pause);
        self
    }

    /// Wall-clock budget for [`SippChild::wait`] (default 30 s). When it
    /// runs out SIPp is stopped and the result says `timed_out`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A scenario keyword: `[key]` in the XML becomes `value` (`-key`).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.keys.push((key.into(), value.into()));
        self
    }

    /// The user parts the scenario reads as `[field0]`, one per call in
    /// order (wrapping around): written to a CSV file and passed as `-inf`.
    pub fn users<I, S>(mut self, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.users = Some(users.into_iter().map(Into::into).collect());
        self
    }

    /// An existing SIPp injection file (`-inf`), instead of [`users`](Self::users).
    pub fn inf(mut self, path: impl Into<PathBuf>) -> Self {
        self.inf = Some(path.into());
        self
    }

    /// `-nr`: no retransmissions, and no retransmission detection either,
    /// so a duplicate request is an unexpected message (see
    /// `uas_single_invite.xml`).
    pub fn no_retrans(mut self) -> Self {
        self.no_retrans = true;
        self
    }

    /// Log every message sent and received to `messages.log` in the run
    /// directory (see `SIPP_KEEP`).
    pub fn trace_messages(mut self, on: bool) -> Self {
        self.trace_messages = on;
        self
    }

    /// Any other SIPp argument, passed as is.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Starts SIPp. A callee is returned once its socket is bound, so a
    /// caller started next cannot race it. Panics when SIPp is missing or
    /// does not come up: this is a test helper.
    pub fn spawn(self) -> SippChild {
        let sipp = find_sipp();
        let label = format!("{} ({})", self.scenario.name(), self.role_name());
        let dir = crate::run_dir("sipp", &self.scenario.name());
        let args = self.args(&dir);

        let stderr = fs::File::create(dir.join("stderr.txt"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let child = Command::new(&sipp)
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            // The live screen; -trace_screen writes the final one to a file.
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", sipp.display()));

        let mut child = SippChild {
            child: Some(child),
            dir,
            label,
            timeout: self.timeout,
            started: Instant::now(),
        };
        if self.role == Role::Server {
            let (ip, port) = self.local.expect("a SIPp callee needs .local(ip, port)");
            child.wait_bound(self.transport, SocketAddr::new(ip, port));
        }
        child
    }

    fn role_name(&self) -> &'static str {
        match self.role {
            Role::Client => "uac",
            Role::Server => "uas",
        }
    }

    /// The command line; writes the scenario and CSV it needs into `dir`.
    fn args(&self, dir: &Path) -> Vec<String> {
        let mut args = Args::default();
        if self.role == Role::Client {
            // SIPp takes the remote host as its one free argument.
            let remote = self.remote.expect("a SIPp caller needs .remote(addr)");
            args.flag(&remote.to_string());
        }
        let scenario = match &self.scenario {
            Scenario::File(path) => path.clone(),
            Scenario::Rendered { name, xml } => {
                let path = dir.join(format!("{name}.xml"));
                write(&path, xml);
                path
            }
        };
        args.opt("-sf", path_arg(&scenario));
        args.opt("-t", self.transport.flag());
        if let Some((ip, port)) = self.local {
            args.opt("-i", ip);
            if port != 0 {
                args.opt("-p", port);
            }
            // Send from that address too, not just advertise it.
            args.flag("-bind_local");
        }
        match (self.role, self.calls) {
            (_, Some(n)) => args.opt("-m", n),
            (Role::Client, None) => args.opt("-m", 1),
            (Role::Server, None) => {}
        }
        if let Some(r) = self.rate {
            args.opt("-r", r);
        }
        if let Some(l) = self.limit {
            args.opt("-l", l);
        }
        if let Some(d) = self.pause {
            args.opt("-d", d.as_millis());
        }
        if let Some(users) = &self.users {
            let path = dir.join("users.csv");
            write(&path, &users_csv(users));
            args.opt("-inf", path_arg(&path));
        } else if let Some(inf) = &self.inf {
            args.opt("-inf", path_arg(inf));
        }
        for (key, value) in &self.keys {
            args.flag("-key");
            args.opt(key, value);
        }
        args.flag("-trace_stat");
        args.opt("-stf", path_arg(&dir.join("stat.csv")));
        args.flag("-trace_screen");
        args.opt("-screen_file", path_arg(&dir.join("screen.log")));
        args.flag("-trace_err");
        args.opt("-error_file", path_arg(&dir.join("errors.log")));
        if self.trace_messages {
            args.flag("-trace_msg");
            args.opt("-message_file", path_arg(&dir.join("messages.log")));
        }
        // No keyboard: SIPp would otherwise poll stdin for commands.
        args.flag("-nostdin");
        if self.no_retrans {
            args.flag("-nr");
        }
        for extra in &self.extra {
            args.flag(extra);
        }
        write(&dir.join("command.txt"), &args.0.join(" "));
        args.0
    }
}

#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, flag: &str) {
        self.0.push(flag.to_string());
    }

    fn opt(&mut self, flag: &str, value: impl ToString) {
        self.0.push(flag.to_string());
        self.0.push(value.to_string());
    }
}

/// A running SIPp. Dropping it kills SIPp and removes its directory.
#[derive(Debug)]
pub struct SippChild {
    child: Option<Child>,
    dir: PathBuf,
    label: String,
    timeout: Duration,
    started: Instant,
}

impl SippChild {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for SIPp to finish its calls (a caller, or a callee with
    /// `.calls(n)`), at most the configured timeout, then stops it.
    pub fn wait(mut self) -> SippResult {
        let deadline = self.started + self.timeout;
        while Instant::now() < deadline {
            if self.try_exit_code().is_some() {
                return self.finish(false);
            }
            sleep(POLL);
        }
        self.stop_gracefully();
        self.finish(true)
    }

    /// Stops SIPp now (a callee serving until told otherwise): no new
    /// calls, open ones may finish for a moment, then it exits and reports.
    pub fn stop(mut self) -> SippResult {
        if self.try_exit_code().is_none() {
            self.stop_gracefully();
        }
        self.finish(false)
    }

    fn try_exit_code(&mut self) -> Option<Option<i32>> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            Ok(None) => None,
            Err(e) => panic!("waiting for {}: {e}", self.label),
        }
    }

    /// SIGUSR1 is SIPp's "quit": stop making calls, exit when the open ones
    /// end; a second one aborts them. SIGKILL if even that hangs (then no
    /// statistics are written).
    fn stop_gracefully(&mut self) {
        for _ in 0..2 {
            signal(self.pid(), "-USR1");
            let until = Instant::now() + STOP_GRACE;
            while Instant::now() < until {
                if self.try_exit_code().is_some() {
                    return;
                }
                sleep(POLL);
            }
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }

    fn finish(&mut self, timed_out: bool) -> SippResult {
        let exit_code = match self.child.take() {
            Some(mut child) => child
                .wait()
                .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.label))
                .code(),
            None => None,
        };
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let stats = parse_stats(&read("stat.csv"));
        let counter = |name: &str| stats.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        SippResult {
            label: self.label.clone(),
            exit_code,
            timed_out,
            successful: counter("SuccessfulCall(C)"),
            failed: counter("FailedCall(C)"),
            retransmissions: counter("Retransmissions(C)"),
            screen: first_screen(&read("screen.log")),
            errors: head(&read("errors.log"), 40),
            stderr: head(&read("stderr.txt"), 20),
            dir: crate::keep_env("SIPP_KEEP").then(|| self.dir.clone()),
            messages: read("messages.log"),
            stats,
        }
    }

    /// Polls the kernel's socket tables until SIPp has bound `addr`.
    fn wait_bound(&mut self, transport: SippTransport, addr: SocketAddr) {
        let deadline = Instant::now() + BIND_TIMEOUT;
        loop {
            if is_bound(transport, addr) {
                return;
            }
            if self.try_exit_code().is_some() || Instant::now() >= deadline {
                let result = self.finish(false);
                panic!("{} did not bind {addr}:\n{result}", self.label);
            }
            sleep(POLL);
        }
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !crate::keep_env("SIPP_KEEP") {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// What SIPp reported: its exit code and final statistics.
#[derive(Clone, Debug)]
pub struct SippResult {
    pub label: String,
    /// None when killed by a signal.
    pub exit_code: Option<i32>,
    /// The timeout ran out and SIPp was stopped.
    pub timed_out: bool,
    pub successful: u64,
    pub failed: u64,
    /// Messages SIPp sent again: its own timer retransmissions, and replies
    /// resent for retransmitted requests it detected.
    pub retransmissions: u64,
    /// The last row of `-trace_stat`, by column name.
    pub stats: HashMap<String, String>,
    /// The final scenario screen (per-message counts).
    pub screen: String,
    /// The head of `-trace_err` (unexpected messages, timeouts...).
    pub errors: String,
    pub stderr: String,
    /// Every message SIPp sent and received, with its time, when
    /// [`Sipp::trace_messages`] was on (else empty).
    pub messages: String,
    /// The run directory, when kept (`SIPP_KEEP=1`).
    pub dir: Option<PathBuf>,
}

impl SippResult {
    /// Every call succeeded: exit code 0, nothing failed, no timeout.
    pub fn is_success(&self) -> bool {
        self.exit_code == Some(0) && self.failed == 0 && !self.timed_out
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.is_success(), "SIPp run failed:\n{self}");
        self
    }

    /// Exactly these counts of successful and failed calls (and no timeout).
    #[track_caller]
    pub fn assert_calls(&self, successful: u64, failed: u64) -> &Self {
        assert!(
            self.successful == successful && self.failed == failed && !self.timed_out,
            "expected {successful} successful / {failed} failed calls:\n{self}"
        );
        self
    }
}

impl fmt::Display for SippResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: exit code {:?}{}, {} successful, {} failed, {} retransmissions",
            self.label,
            self.exit_code,
            if self.timed_out { " (timed out)" } else { "" },
            self.successful,
            self.failed,
            self.retransmissions,
        )?;
        for (title, text) in [
            ("screen", &self.screen),
            ("errors", &self.errors),
            ("stderr", &self.stderr),
        ] {
            if !text.trim().is_empty() {
                writeln!(f, "--- {title}\n{}", text.trim_end())?;
            }
        }
        if let Some(dir) = &self.dir {
            writeln!(f, "--- logs kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// Whether something has bound `addr` (UDP) or listens on it (TCP),
/// directly or through a wildcard address, per `/proc/net/{udp,tcp}{,6}`.
/// Read-only: binding a probe socket instead could steal the port.
pub fn is_bound(transport: SippTransport, addr: SocketAddr) -> bool {
    let (table, wanted_state) = match transport {
        SippTransport::Udp => ("udp", "07"), // TCP_CLOSE: an unconnected UDP socket
        SippTransport::Tcp => ("tcp", "0A"), // TCP_LISTEN
    };
    [table.to_string(), format!("{table}6")].iter().any(|file| {
        let text = fs::read_to_string(format!("/proc/net/{file}")).unwrap_or_default();
        text.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (Some(local), Some(_remote), Some(state)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return false;
            };
            state == wanted_state
                && parse_proc_addr(local).is_some_and(|(ip, port)| {
                    port == addr.port() && (ip == addr.ip() || ip.is_unspecified())
                })
        })
    })
}

/// Waits until [`is_bound`], at most `timeout`. For starting other servers
/// (the proxy under test) without sleeping.
pub fn wait_until_bound(transport: SippTransport, addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !is_bound(transport, addr) {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL);
    }
    true
}

/// `0100007F:13C4` / 32 hex digits + port. The kernel prints each 32-bit
/// word of the address as a native-endian integer (`%08X`), the port in
/// host order.
fn parse_proc_addr(field: &str) -> Option<(IpAddr, u16)> {
    let (ip_hex, port_hex) = field.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip_hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            // A dual-stack socket bound to an IPv4 address shows it mapped.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// `-trace_stat` is `;`-separated: a header row, then one row per period;
/// the last row holds the cumulative (C) counters at exit.
fn parse_stats(csv: &str) -> HashMap<String, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The screen file holds the scenario screen, then statistics and
/// repartition screens; the first one (message counts) is what explains a
/// failure.
fn first_screen(screen: &str) -> String {
    let end = screen
        .find("Statistics Screen")
        .map_or(screen.len(), |i| screen[..i].rfind('\n').unwrap_or(i));
    head(&screen[..end], 60)
}

fn head(text: &str, lines: usize) -> String {
    text.lines().take(lines).collect::<Vec<_>>().join("\n")
}

fn users_csv(users: &[String]) -> String {
    let mut csv = String::from("SEQUENTIAL\n");
    for user in users {
        csv.push_str(user);
        csv.push_str(";\n");
    }
    csv
}

/// A scenario from a template in [`scenario_dir`], its `@NAME@` markers
/// replaced: SIPp cannot take response codes from its command line.
fn render(template: &str, name: &str, vars: &[(&str, &str)]) -> Scenario {
    let path = scenario_dir().join(template);
    let mut xml =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    for (marker, value) in vars {
        xml = xml.replace(marker, value);
    }
    Scenario::Rendered {
        name: name.to_string(),
        xml,
    }
}

fn resolve(scenario: &Path) -> PathBuf {
    let path = if scenario.is_absolute() {
        scenario.to_path_buf()
    } else {
        scenario_dir().join(scenario)
    };
    assert!(path.is_file(), "SIPp scenario {} not found", path.display());
    path
}

fn find_sipp() -> PathBuf {
    if let Some(path) = std::env::var_os("SIPP") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("sipp"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("sipp not found: apt-get install sip-tester (CI installs it in .ci/run)")
        })
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Sends a signal with kill(1): std has no portable way and the crate
/// carries no libc dependency for this alone.
fn signal(pid: u32, signal: &str) {
    if pid != 0 {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_decode() {
        // 127.0.0.30:5070 as /proc/net/udp prints it on a little-endian host.
        let v4 = u32::from_ne_bytes([127, 0, 0, 30]);
        let field = format!("{v4:08X}:13CE");
        assert_eq!(
            parse_proc_addr(&field),
            Some((IpAddr::V4(Ipv4Addr::new(127, 0, 0, 30)), 5070))
        );
        let mapped: String = std::net::Ipv4Addr::new(127, 0, 0, 30)
            .to_ipv6_mapped()
            .octets()
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect();
        assert_eq!(
            parse_proc_addr(&format!("{mapped}:13CE")),
            Some((IpAddr::V4(Ipv4Addr::new(127, 0, 0, 30)), 5070))
        );
        assert_eq!(parse_proc_addr("garbage"), None);
    }

    #[test]
    fn stats_take_the_last_row() {
        let csv = "A;SuccessfulCall(C);FailedCall(C);\n1;0;0;\n2;10;1;\n";
        let stats = parse_stats(csv);
        assert_eq!(stats["SuccessfulCall(C)"], "10");
        assert_eq!(stats["FailedCall(C)"], "1");
        assert!(parse_stats("header-only;\n").is_empty());
    }

    #[test]
    fn users_become_a_sequential_csv() {
        assert_eq!(users_csv(&["a".into(), "b".into()]), "SEQUENTIAL\na;\nb;\n");
    }
}
