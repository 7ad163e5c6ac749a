//! Debian's baresip 1.0.0 (`baresip-core`) driven headless, so the e2e
//! suite can check that a real softphone registers and calls through a
//! node, not just our own hand-written SIP.
//!
//! Each [`Baresip`] runs in a fresh directory holding its `config` (see
//! [`config`]): no sound card (a sine wave as microphone, an unconnected
//! `aubridge` as speaker), SIP, RTP and DNS confined to the phone's own
//! 127.0.0.0/8 address, and `ctrl_tcp` as the only interface. The account is
//! created over `ctrl_tcp` (`uanew`) after we are connected, because
//! `ctrl_tcp` drops events while no client is connected and we would miss
//! `REGISTER_OK`. Every SIP message is traced (`-s`) to `baresip.log`, whose
//! tail is part of every failure; the directory is kept after a failure, or
//! always with `BARESIP_KEEP=1`. The child is killed on drop, so a panicking
//! test leaves no phone behind.
//!
//! One thing the config cannot pin: libre 1.1.0 does not bind outgoing TCP
//! connections, so over TCP the phone connects from 127.0.0.1 (the kernel's
//! source for 127.0.0.0/8), not from its own address. The node sees a
//! flow whose source differs from the Contact, as behind a NAT.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::net::Transport;

pub use crate::softphone::Account;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// Where Debian installs the binary and its modules.
pub const BARESIP: &str = "/usr/bin/baresip";
pub const MODULES: &str = "/usr/lib/baresip/modules";

/// How long to wait for one event (a REGISTER or INVITE transaction over
/// loopback takes milliseconds; this only bounds a failing test).
pub const WAIT: Duration = Duration::from_secs(10);

impl Account {
    /// The `uanew` / `accounts` line. `regint` keeps re-registration out of
    /// the test's window; `answermode=auto` makes the callee answer at once.
    pub fn line(&self) -> String {
        let tp = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws | Transport::Wss => panic!("baresip 1.0 has no SIP over WebSocket"),
        };
        let nat = if self.outbound {
            ";sipnat=outbound"
        } else {
            ""
        };
        let auth = match &self.password {
            Some(pw) => format!(";auth_user={};auth_pass={pw}", self.user),
            None => String::new(),
        };
        format!(
            "<sip:{user}@{domain};transport={tp}>;outbound=\"sip:{proxy};transport={tp}\"\
             {nat}{auth};regint=600;answermode=auto;audio_codecs=PCMU,PCMA",
            user = self.user,
            domain = self.domain,
            proxy = self.proxy,
        )
    }
}

impl Account {
    /// [`Account::line`] for a phone a browser calls: ICE and DTLS-SRTP.
    pub fn webrtc_line(&self) -> String {
        self.line() + ";medianat=ice;mediaenc=dtls_srtp"
    }
}

/// The `config` file. `uuid` loads the module that gives the phone a
/// `+sip.instance`, which SIP Outbound needs (without it baresip refuses
/// `sipnat=outbound`); it also adds it to plain registrations, so it is off
/// for those to keep them plain.
pub fn config(ip: &str, ctrl_port: u16, dir: &Path, uuid: bool) -> String {
    let uuid = if uuid { "module_tmp\t\tuuid.so\n" } else { "" };
    format!(
        "poll_method\t\tepoll\n\
         # Only this loopback address: SIP on an ephemeral port, RTP and\n\
         # the SDP c= line from net_interface, DNS to a dead loopback port.\n\
         sip_listen\t\t{ip}:0\n\
         net_interface\t\t{ip}\n\
         dns_server\t\t127.0.0.1:1\n\
         rtp_ports\t\t20000-40000\n\
         rtp_timeout\t\t0\n\
         # No sound card: a sine as microphone (ausine only does 48 kHz\n\
         # stereo), an unconnected bridge as speaker and ringer (no\n\
         # files to play from {dir}).\n\
         audio_path\t\t{dir}\n\
         audio_source\t\tausine,440\n\
         ausrc_srate\t\t48000\n\
         ausrc_channels\t\t2\n\
         audio_player\t\taubridge,play\n\
         audio_alert\t\taubridge,alert\n\
         ringback_disabled\tyes\n\
         module_path\t\t{MODULES}\n\
         module\t\t\tg711.so\n\
         module\t\t\tausine.so\n\
         module\t\t\taubridge.so\n\
         {uuid}\
         module_app\t\tmenu.so\n\
         module_app\t\tctrl_tcp.so\n\
         ctrl_tcp_listen\t\t{ip}:{ctrl_port}\n",
        dir = dir.display(),
    )
}

/// A running baresip and its `ctrl_tcp` connection.
pub struct Baresip {
    pub name: String,
    process: Process,
    ctrl: TcpStream,
    buf: Vec<u8>,
    /// Events received and not yet consumed by a wait, oldest first.
    pending: Vec<Value>,
    token: u32,
}

/// The child and its directory: killed and removed on drop.
struct Process {
    name: String,
    dir: PathBuf,
    child: Child,
    /// Every event, as `TYPE(param)`, for failure messages.
    history: Vec<String>,
}

impl Baresip {
    /// Starts baresip on `ip` and connects to its `ctrl_tcp`. Panics with a
    /// hint to run `.ci/run` when baresip is not installed.
    pub async fn start(name: &str, ip: &str, uuid: bool) -> Baresip {
        Self::start_with(name, ip, uuid, "").await
    }

    /// A phone a WebRTC browser can call: ICE and DTLS-SRTP modules
    /// loaded (the account line adds `medianat=ice;mediaenc=dtls_srtp`,
    /// see [`Account::webrtc_line`]) and RTP/RTCP multiplexed, as browsers
    /// require.
    pub async fn start_webrtc(name: &str, ip: &str) -> Baresip {
        let extra = "module\t\t\tice.so\nmodule\t\t\tdtls_srtp.so\nrtcp_mux\t\tyes\n";
        Self::start_with(name, ip, false, extra).await
    }

    async fn start_with(name: &str, ip: &str, uuid: bool, extra_config: &str) -> Baresip {
        assert!(
            Path::new(BARESIP).exists() && Path::new(MODULES).join("ctrl_tcp.so").exists(),
            "{BARESIP} (with ctrl_tcp) is not installed: run `.ci/run` (or \
             `bash tests/install-tools.sh`), which installs Debian's baresip-core"
        );
        let dir = crate::run_dir("baresip", name);
        // ctrl_tcp needs a fixed port: take a free one on our own address.
        let ctrl_port = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("free ctrl_tcp port")
            .port();
        let text = config(ip, ctrl_port, &dir, uuid) + extra_config;
        fs::write(dir.join("config"), text).expect("write config");
        let log = fs::File::create(dir.join("baresip.log")).expect("create log");
        let child = Command::new(BARESIP)
            .args(["-4", "-s", "-v", "-f"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {BARESIP}: {e}"));
        // From here on the process is killed if anything panics.
        let mut process = Process {
            name: name.into(),
            dir,
            child,
            history: Vec::new(),
        };
        let ctrl_addr = SocketAddr::new(ip.parse().expect("an IP"), ctrl_port);
        let ctrl = process.connect(ctrl_addr).await;
        Baresip {
            name: name.into(),
            process,
            ctrl,
            buf: Vec::new(),
            pending: Vec::new(),
            token: 0,
        }
    }

    /// Creates the account and waits for its `REGISTER_OK` (failing at
    /// once on `REGISTER_FAIL`). Returns the event's `param` ("200 OK").
    pub async fn register(&mut self, account: &Account) -> String {
        self.register_line(account, &account.line()).await
    }

    /// [`Baresip::register`] with an account line of the caller's.
    pub async fn register_line(&mut self, account: &Account, line: &str) -> String {
        self.command("uanew", line).await;
        let ok = self.expect_event("REGISTER_OK", &["REGISTER_FAIL"]).await;
        assert_eq!(ok["accountaor"], account.aor(), "{}: {ok}", self.name);
        param(&ok)
    }

    /// Deletes the account: baresip sends its REGISTER with `Expires: 0`
    /// and reports `UNREGISTERING` (1.0.0 has no event for its answer).
    pub async fn unregister(&mut self, account: &Account) {
        self.command("uadel", &account.aor()).await;
        self.expect_event("UNREGISTERING", &[]).await;
    }

    /// Runs a `ctrl_tcp` command and returns its response's `data`;
    /// panics if baresip reports the command failed.
    pub async fn command(&mut self, command: &str, params: &str) -> String {
        self.token += 1;
        let token = format!("{}-{}", self.name, self.token);
        let body = json!({"command": command, "params": params, "token": token}).to_string();
        let frame = format!("{}:{body},", body.len());
        if let Err(e) = self.ctrl.write_all(frame.as_bytes()).await {
            self.fail(&format!("sending {command}: {e}"));
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let msg = self
                .next(deadline, &format!("the response to {command}"))
                .await;
            if msg["response"] == true && msg["token"] == token.as_str() {
                if msg["ok"] != true {
                    self.fail(&format!("{command} {params} failed: {msg}"));
                }
                return msg["data"].as_str().unwrap_or_default().to_owned();
            }
            self.pending.push(msg);
        }
    }

    /// The oldest unconsumed event of type `ty` (`CALL_ESTABLISHED`...),
    /// waiting up to [`WAIT`]. An event in `fatal` (say `CALL_CLOSED` while
    /// a call is being set up) fails at once, naming its reason.
    pub async fn expect_event(&mut self, ty: &str, fatal: &[&str]) -> Value {
        let what = format!("event {ty}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.pending.iter().position(|e| is_event(e, ty)) {
                return self.pending.remove(i);
            }
            if let Some(e) = self
                .pending
                .iter()
                .find(|e| fatal.iter().any(|f| is_event(e, f)))
            {
                let e = e.clone();
                self.fail(&format!("got {e} while waiting for {what}"));
            }
            let msg = self.next(deadline, &what).await;
            self.pending.push(msg);
        }
    }

    /// The next JSON message from `ctrl_tcp`, or a failure at `deadline`.
    async fn next(&mut self, deadline: Instant, what: &str) -> Value {
        loop {
            if let Some(msg) = self.take_frame() {
                if msg["event"] == true {
                    let p = param(&msg);
                    self.process
                        .history
                        .push(format!("{}({p})", msg["type"].as_str().unwrap_or("?")));
                }
                return msg;
            }
            let mut b = [0u8; 4096];
            match timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.ctrl.read(&mut b),
            )
            .await
            {
                Err(_) => self.fail(&format!("timed out waiting for {what}")),
                Ok(Ok(0)) | Ok(Err(_)) => self.fail(&format!("ctrl_tcp closed waiting for {what}")),
                Ok(Ok(n)) => self.buf.extend_from_slice(&b[..n]),
            }
        }
    }

    /// Splits one netstring (`len:json,`) off the buffer.
    fn take_frame(&mut self) -> Option<Value> {
        let colon = self.buf.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return None;
        }
        let frame: Vec<u8> = self.buf.drain(..=end).collect();
        let json = &frame[colon + 1..end];
        Some(serde_json::from_slice(json).unwrap_or_else(|e| {
            self.fail(&format!(
                "bad ctrl_tcp JSON ({e}): {}",
                String::from_utf8_lossy(json)
            ))
        }))
    }

    /// The SIP trace and log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Panics with `why`, the events so far and the log's tail.
    pub fn fail(&self, why: &str) -> ! {
        self.process.fail(why)
    }

    /// An assertion about this phone: fails like [`Baresip::fail`], so
    /// the message carries the phone's SIP trace.
    pub fn ensure(&self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.fail(&why());
        }
    }
}

impl Process {
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    fn fail(&self, why: &str) -> ! {
        let log = strip_colours(&self.log());
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(150)..];
        panic!(
            "baresip {}: {why}\nevents: {:?}\n--- last lines of {} ---\n{}",
            self.name,
            self.history,
            self.dir.join("baresip.log").display(),
            tail.join("\n")
        )
    }

    /// Connects to `ctrl_tcp` once baresip listens (it starts in well
    /// under a second; refusals until then are expected).
    async fn connect(&mut self, addr: SocketAddr) -> TcpStream {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("exited at start ({status})"));
            }
            match TcpStream::connect(addr).await {
                Ok(s) => return s,
                Err(e) if Instant::now() >= deadline => {
                    self.fail(&format!("ctrl_tcp at {addr} never accepted: {e}"))
                }
                Err(_) => sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test keeps its logs: the panic names the directory.
        if !crate::keep_env("BARESIP_KEEP") && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The event's `param` ("200 OK", "Connection reset by peer"...).
pub fn param(event: &Value) -> String {
    event["param"].as_str().unwrap_or_default().to_owned()
}

fn is_event(msg: &Value, ty: &str) -> bool {
    msg["event"] == true && msg["type"] == ty
}

/// The log without the terminal colour codes baresip writes even to a file.
fn strip_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        let code = &rest[at..];
        let end = code.find('m').map_or(code.len(), |m| m + 1);
        rest = &code[end..];
    }
    out.push_str(rest);
    out
}
