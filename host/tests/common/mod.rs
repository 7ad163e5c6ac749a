//! Helpers shared by the tests that run the `switchyard` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `switchyard ARGS...` and forwards every stdout line containing
/// `needle`; stdout is drained until the process ends, so the node never
/// blocks on a full pipe.
fn spawn_watching(
    args: &[&std::ffi::OsStr],
    needle: &'static str,
) -> (Running, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn switchyard");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(line);
            }
        }
    });
    (Running(child), rx)
}

/// Starts `switchyard run` and waits for its "listening" log lines.
pub fn start(args: &[&str], listeners: usize) -> Running {
    let all: Vec<&std::ffi::OsStr> = ["--log", "info", "run"]
        .iter()
        .chain(args)
        .map(std::ffi::OsStr::new)
        .collect();
    let (running, rx) = spawn_watching(&all, "listening");
    for _ in 0..listeners {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("switchyard did not report its listeners");
    }
    running
}

/// Starts `switchyard run --config FILE` (whose `[admin] listen` has port 0)
/// and returns it with the admin address it logged.
pub fn start_with_admin(config: &std::path::Path) -> (Running, std::net::SocketAddr) {
    let args = ["--log", "info", "run", "--config"].map(std::ffi::OsStr::new);
    let all: Vec<&std::ffi::OsStr> = args.into_iter().chain([config.as_os_str()]).collect();
    let (running, rx) = spawn_watching(&all, "admin endpoint listening");
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("switchyard did not report its admin endpoint");
    let addr = strip_ansi(&line)
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no addr= in {line:?}"));
    (running, addr)
}

/// Terminal colour codes, in case the log has them.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
