//! Debian's linphonec 5.1 (`linphone-cli`) driven headless, so the e2e
//! suite checks a second real softphone, one that dials from its pub-GRUU
//! (`sip:bob@IP;gr=urn:uuid:…` as Contact) and sends
//! `Supported: replaces, outbound, gruu`.
//!
//! Each [`Linphone`] runs in a fresh directory, also its `HOME` and XDG
//! dirs (for liblinphone's sqlite database, ZRTP cache and history), with
//! the rc file of [`rc`], and is driven on stdin with console commands.
//! Its stdout carries the console (`Call 1 with sip:bob@… connected.`)
//! and, as we pass `-d 6` without `-l`, liblinphone's log, which dumps
//! every SIP message sent and received: every wait is on a line of that
//! one ordered stream, so nothing polls or sleeps. linphonec 5.1 prints
//! nothing on the console when a registration changes, so registration
//! is read from the log (`… moving from state [..] to
//! [LinphoneRegistrationOk]`) and confirmed with `states proxies`.
//!
//! The stream is copied to `linphonec.out`; the directory is kept when a
//! test panics (or with `LINPHONE_KEEP=1`), and a failure prints the SIP
//! messages the phone saw and its last console lines. The child is killed
//! on drop, so a panicking test leaves no phone behind.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use switchyard::net::Transport;

pub use crate::softphone::Account;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::{Instant, timeout_at};

/// Where Debian's `linphone-cli` installs the console client.
pub const LINPHONEC: &str = "/usr/bin/linphonec";

/// How long to wait for one line (a transaction over loopback takes
/// milliseconds; this only bounds a failing test).
pub const WAIT: Duration = Duration::from_secs(10);

/// The rc file for a phone on loopback address `ip`.
///
/// - `[sip]`: SIP bound to `ip` only, on a random port of the transport
///   under test (`-1`) and none of the others (`0`); no IPv6
///   (`ipv6_migration_done` keeps liblinphone from dropping `use_ipv6`).
///   `auto_net_state_mon=0`: the monitor calls the network down on a host
///   whose only route is loopback, and then nothing registers.
/// - `[net]`, `[rtp]`: no STUN, ICE or UPnP; RTP on `ip`, random ports.
/// - `[proxy_0]`: the node as registrar and outbound proxy; no REGISTER
///   until the test says `register`. liblinphone has no RFC 5626 switch:
///   it always sends `+sip.instance` and `Supported: outbound`, and
///   `contact_parameters` adds the `reg-id` that makes the registration
///   an Outbound one. It does none of the rest of RFC 5626 (no STUN
///   keep-alives, no flow recovery; on UDP, CRLF keep-alives every 30 s).
pub fn rc(ip: &str, account: &Account) -> String {
    let (udp, tcp, tls, tp) = match account.transport {
        Transport::Udp => (-1, 0, 0, "udp"),
        Transport::Tcp => (0, -1, 0, "tcp"),
        Transport::Tls => (0, 0, -1, "tls"),
        Transport::Ws | Transport::Wss => panic!("linphonec has no SIP over WebSocket"),
    };
    let reg_id = if account.outbound {
        "contact_parameters=reg-id=1\n"
    } else {
        ""
    };
    // The credentials for the node's realm (its domain), if it asks.
    let auth = match &account.password {
        Some(pw) => format!(
            "[auth_info_0]\nusername={user}\nuserid={user}\npasswd={pw}\nrealm={realm}\ndomain={realm}\n",
            user = account.user,
            realm = account.domain,
        ),
        None => String::new(),
    };
    // Over TLS: verify the node's certificate and name against the test CA.
    let tls_trust = match &account.ca {
        Some(ca) => format!(
            "root_ca={}\nverify_server_certs=1\nverify_server_cn=1\n",
            ca.display()
        ),
        None => String::new(),
    };
    format!(
        "[sip]\n{tls_trust}bind_address={ip}\nsip_port={udp}\nsip_tcp_port={tcp}\nsip_tls_port={tls}\n\
         ipv6_migration_done=1\nuse_ipv6=0\nauto_net_state_mon=0\n\
         register_only_when_network_is_up=0\ndefault_proxy=0\n\
         [net]\nfirewall_policy=0\n\
         [rtp]\nbind_address={ip}\naudio_rtp_port=-1\nvideo_rtp_port=-1\ntext_rtp_port=-1\n\
         [video]\ncapture=0\ndisplay=0\nautomatically_initiate=0\nautomatically_accept=0\n\
         [proxy_0]\nreg_proxy=<sip:{proxy};transport={tp}>\nreg_identity={aor}\n\
         reg_expires=600\nreg_sendregister=0\npublish=0\n{reg_id}{auth}",
        proxy = account.proxy,
        aor = account.aor(),
    )
}

/// What a line of linphonec's stdout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The console: command echoes, tables and call events.
    Console,
    /// liblinphone's log, with the SIP messages it dumps.
    Log,
    /// Our summary of one dumped SIP message, `<<<` received or `>>>`
    /// sent: `<<< ACK sip:… SIP/2.0 | CSeq: 20 ACK | UDP://127.0.61.1:5060`.
    Wire,
}

/// A dump of SIP bytes in the log: belle-sip writes `message sent to
/// [UDP://…], size: [N] bytes` or `received [N] new bytes from [UDP://…]:`,
/// then those N bytes and a newline, in one write: counting bytes tells
/// where the dump ends and the console resumes.
struct Dump {
    dir: &'static str,
    peer: String,
    /// The start line of the message whose CSeq is not seen yet.
    start: Option<String>,
    left: usize,
}

impl Dump {
    /// The dump a log line announces, if any.
    fn announced(log: &str) -> Option<Dump> {
        let dir = if log.contains("]: message sent to [") {
            ">>>"
        } else if log.contains("]: received [") && log.contains(" new bytes from [") {
            "<<<"
        } else {
            return None;
        };
        let tokens = log.split('[').filter_map(|t| t.split(']').next());
        let (mut peer, mut size) = (None, None);
        for token in tokens.skip(1) {
            if token.contains("://") {
                peer = Some(token.to_owned());
            } else if let Ok(n) = token.parse::<usize>() {
                size = Some(n + 1);
            }
        }
        Some(Dump {
            dir,
            peer: peer?,
            start: None,
            left: size?,
        })
    }
}

/// A running linphonec.
pub struct Linphone {
    pub name: String,
    /// `sip:user@domain`.
    pub identity: String,
    stdin: ChildStdin,
    /// Lines of stdout with their length in bytes.
    rx: UnboundedReceiver<(usize, String)>,
    /// Every line so far; `true` once an expectation consumed it.
    lines: Vec<(Kind, String, bool)>,
    dump: Option<Dump>,
    dir: PathBuf,
    child: Child,
    /// The thread copying stdout to `rx` and `linphonec.out`.
    reader: Option<JoinHandle<()>>,
}

impl Linphone {
    /// Starts linphonec for `account` on `ip` (`-a`: auto-answer when
    /// `autoanswer`), has it use (no) files instead of a sound card and
    /// returns once its console answers. Panics with a hint to run
    /// `.ci/run` when linphonec is not installed.
    pub async fn start(ip: &str, account: &Account, autoanswer: bool) -> Linphone {
        Self::start_with(ip, account, autoanswer, "").await
    }

    /// A phone a WebRTC browser can call: ICE (`firewall_policy=3`, host
    /// candidates only), DTLS-SRTP and RTP/RTCP multiplexing, as browsers
    /// require.
    pub async fn start_webrtc(ip: &str, account: &Account, autoanswer: bool) -> Linphone {
        let extra = "[net]\nfirewall_policy=3\n[sip]\nmedia_encryption=dtls\n[rtp]\nrtcp_mux=1\n";
        Self::start_with(ip, account, autoanswer, extra).await
    }

    async fn start_with(ip: &str, account: &Account, autoanswer: bool, extra_rc: &str) -> Linphone {
        assert!(
            Path::new(LINPHONEC).exists(),
            "{LINPHONEC} is not installed: run `.ci/run`, which installs \
             Debian's linphone-cli, or `apt-get install linphone-cli`"
        );
        let name = account.user.clone();
        let dir = crate::run_dir("linphone", &name);
        fs::create_dir_all(dir.join(".local/share/linphone")).expect("linphone data dir");
        fs::write(dir.join("rc"), rc(ip, account) + extra_rc).expect("write rc");
        let mut cmd = Command::new(LINPHONEC);
        cmd.arg("-c").arg(dir.join("rc")).args(["-d", "6"]);
        if autoanswer {
            cmd.arg("-a");
        }
        // A clean environment: no sound server, no user config.
        cmd.env_clear()
            .env("HOME", &dir)
            .env("XDG_CONFIG_HOME", dir.join(".config"))
            .env("XDG_DATA_HOME", dir.join(".local/share"))
            .env("XDG_CACHE_HOME", dir.join(".cache"))
            .env("XDG_RUNTIME_DIR", &dir)
            .env("TERM", "dumb")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.join("stderr.txt")).expect("stderr file"));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {LINPHONEC}: {e}"));
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let (tx, rx) = unbounded_channel();
        let mut copy = fs::File::create(dir.join("linphonec.out")).expect("output copy");
        let reader = std::thread::spawn(move || {
            let (mut out, mut buf) = (BufReader::new(stdout), Vec::new());
            while matches!(out.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let _ = copy.write_all(&buf);
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                if tx.send((buf.len(), line)).is_err() {
                    break;
                }
                buf.clear();
            }
        });
        let mut phone = Linphone {
            name,
            identity: account.aor(),
            stdin,
            rx,
            lines: Vec::new(),
            dump: None,
            dir,
            child,
            reader: Some(reader),
        };
        phone.command("soundcard use files");
        phone.console("Using wav files instead of soundcard.").await;
        phone
    }

    /// Types `line` at linphonec's prompt.
    pub fn command(&mut self, line: &str) {
        if let Err(e) = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()) {
            self.fail(&format!("sending `{line}`: {e}"));
        }
    }

    /// `register`, then waits for `LinphoneRegistrationOk`.
    pub async fn register(&mut self) {
        self.command("register");
        self.registration("LinphoneRegistrationOk").await;
    }

    /// `unregister` (a REGISTER with `Expires: 0`), then waits for
    /// `LinphoneRegistrationCleared`, which follows its 200 OK.
    pub async fn unregister(&mut self) {
        self.command("unregister");
        self.registration("LinphoneRegistrationCleared").await;
    }

    /// Waits for the log to report `state`, which `states proxies` must
    /// then show too; `LinphoneRegistrationFailed` first fails.
    async fn registration(&mut self, state: &str) {
        let to = format!("] to [{state}] on core");
        let (what, failed) = (
            format!("{state} in the log"),
            "to [LinphoneRegistrationFailed]",
        );
        let want = |l: &str| l.contains("moving from state [") && l.contains(&to);
        self.expect(&what, Kind::Log, want, &[failed]).await;
        let me = self.identity.clone();
        let shown = self.state_row("states proxies", &me, 1).await;
        if shown != state {
            self.fail(&format!("`states proxies` says {shown}, the log {state}"));
        }
    }

    /// `call uri`; returns the call's id once linphonec has it.
    pub async fn call(&mut self, uri: &str) -> u32 {
        self.command(&format!("call {uri}"));
        self.call_id(&format!("Establishing call id to {uri}, assigned id "))
            .await
    }

    /// Waits for a call from `peer` to ring; returns its id.
    pub async fn incoming(&mut self, peer: &str) -> u32 {
        self.call_id(&format!(
            "Receiving new incoming call from {peer}, assigned id "
        ))
        .await
    }

    /// Waits for call `id` with `peer` to be connected with audio flowing
    /// (`connected`, then `Media streams established`); an error or end
    /// of the call first fails.
    pub async fn connected(&mut self, id: u32, peer: &str) {
        let error = format!("Call {id} with {peer} error.");
        let ended = format!("Call {id} with {peer} ended");
        for line in [
            format!("Call {id} with {peer} connected."),
            format!("Media streams established with {peer} for call {id} (audio)."),
        ] {
            let what = format!("`{line}`");
            self.expect(&what, Kind::Console, |l| l == line, &[&error, &ended])
                .await;
        }
    }

    /// The state `states calls` shows for call `id` (`StreamsRunning`...).
    pub async fn call_state(&mut self, id: u32) -> String {
        self.state_row("states calls", &id.to_string(), 2).await
    }

    /// Waits for call `id` with `peer` to end; returns linphonec's reason
    /// (`No error` for a BYE).
    pub async fn ended(&mut self, id: u32, peer: &str) -> String {
        let prefix = format!("Call {id} with {peer} ended (");
        let line = self.console(&prefix).await;
        line[prefix.len()..].trim_end_matches(").").to_owned()
    }

    /// Waits for a SIP message whose start line begins with `start`
    /// (`ACK `, `SIP/2.0 200`) and whose CSeq method is `method`,
    /// received (`dir` = `<<<`) or sent (`>>>`); returns its summary.
    pub async fn wire(&mut self, dir: &str, start: &str, method: &str) -> String {
        let (prefix, cseq) = (format!("{dir} {start}"), format!(" {method} | "));
        let what = format!("{dir} {start}… ({method})");
        let want = |l: &str| l.starts_with(&prefix) && l.contains(&cseq);
        self.expect(&what, Kind::Wire, want, &[]).await
    }

    /// Types a `states` `command` and returns column `n` of the table row
    /// whose first column is `key`.
    async fn state_row(&mut self, command: &str, key: &str, n: usize) -> String {
        self.command(command);
        let what = format!("`{command}` row {key}");
        let want = |l: &str| l.split('|').next().is_some_and(|c| c.trim() == key);
        let row = self.expect(&what, Kind::Console, want, &[]).await;
        row.split('|').nth(n).unwrap_or_default().trim().to_owned()
    }

    /// Waits for the console line `prefix` followed by a call id.
    async fn call_id(&mut self, prefix: &str) -> u32 {
        let line = self.console(prefix).await;
        let id = line[prefix.len()..].trim();
        id.parse()
            .unwrap_or_else(|_| self.fail(&format!("no call id in `{line}`")))
    }

    /// Waits for a console line starting with `prefix`.
    async fn console(&mut self, prefix: &str) -> String {
        let what = format!("`{prefix}…`");
        self.expect(&what, Kind::Console, |l| l.starts_with(prefix), &[])
            .await
    }

    /// The oldest unconsumed line of `kind` that `want` accepts, reading
    /// more output for up to [`WAIT`]; fails at once on a line of `kind`
    /// that contains one of `fatal`.
    async fn expect(
        &mut self,
        what: &str,
        kind: Kind,
        want: impl Fn(&str) -> bool,
        fatal: &[&str],
    ) -> String {
        let deadline = Instant::now() + WAIT;
        let mut from = 0;
        loop {
            for i in from..self.lines.len() {
                let (k, text, used) = &self.lines[i];
                if *k != kind || *used {
                    continue;
                }
                if want(text) {
                    self.lines[i].2 = true;
                    return self.lines[i].1.clone();
                }
                if fatal.iter().any(|f| text.contains(f)) {
                    self.fail(&format!("`{text}` while waiting for {what}"));
                }
            }
            from = self.lines.len();
            match timeout_at(deadline, self.rx.recv()).await {
                Err(_) => self.fail(&format!("timed out waiting for {what}")),
                Ok(None) => self.fail(&format!("linphonec exited while waiting for {what}")),
                Ok(Some((len, line))) => self.push(len, line),
            }
        }
    }

    /// Files one line of output (`len` bytes with its newline), adding a
    /// [`Kind::Wire`] summary for each SIP message a [`Dump`] holds.
    fn push(&mut self, len: usize, line: String) {
        if let Some(dump) = &mut self.dump {
            dump.left = dump.left.saturating_sub(len);
            let cseq = line
                .get(..5)
                .is_some_and(|h| h.eq_ignore_ascii_case("cseq:"));
            if is_start_line(&line) {
                dump.start = Some(line.clone());
            } else if cseq && let Some(first) = dump.start.take() {
                let wire = format!("{} {first} | {line} | {}", dump.dir, dump.peer);
                self.lines.push((Kind::Wire, wire, false));
            }
            if dump.left == 0 {
                self.dump = None;
            }
            self.lines.push((Kind::Log, line, false));
            return;
        }
        // The prompt has no newline: it prefixes whatever is printed next.
        let mut text = line.as_str();
        while let Some(rest) = text.strip_prefix("linphonec> ") {
            text = rest;
        }
        let b = text.as_bytes();
        let kind = if b.len() > 24 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
            // `2026-01-31 12:00:00:000 belle-sip-message-…`
            self.dump = Dump::announced(text);
            Kind::Log
        } else if text.is_empty() || text.starts_with('\t') {
            Kind::Log // the rest of a multi-line record (call statistics)
        } else {
            Kind::Console
        };
        self.lines.push((kind, text.to_owned(), false));
    }

    /// Panics with `why`, the SIP messages seen and the console's tail.
    /// Everything linphonec printed so far (console, log, SIP dumps).
    pub fn output(&self) -> String {
        fs::read_to_string(self.dir.join("linphonec.out")).unwrap_or_default()
    }

    pub fn fail(&self, why: &str) -> ! {
        let of = |kind| -> Vec<&str> {
            let lines = self.lines.iter().filter(|l| l.0 == kind);
            lines.map(|l| l.1.as_str()).collect()
        };
        let console = of(Kind::Console);
        let tail = &console[console.len().saturating_sub(40)..];
        let stderr = fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default();
        panic!(
            "linphonec {} ({}): {why}\n--- SIP messages (<<< received, >>> sent) ---\n{}\n\
             --- last console lines ---\n{}\n--- stderr ---\n{stderr}--- all output (kept): {} ---",
            self.name,
            self.identity,
            of(Kind::Wire).join("\n"),
            tail.join("\n"),
            self.dir.join("linphonec.out").display(),
        )
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The child is gone, so its stdout is closed and the copy ends.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if !std::thread::panicking() && !crate::keep_env("LINPHONE_KEEP") {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `INVITE sip:… SIP/2.0` or `SIP/2.0 200 OK`.
fn is_start_line(line: &str) -> bool {
    let method = line.split(' ').next().unwrap_or_default();
    line.starts_with("SIP/2.0 ")
        || line.ends_with(" SIP/2.0")
            && !method.is_empty()
            && method.bytes().all(|c| c.is_ascii_uppercase())
}
