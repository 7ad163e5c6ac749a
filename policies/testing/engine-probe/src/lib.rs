//! The engine's test component (`host/src/policy/wasm/*_tests.rs`). Every
//! behaviour the engine must handle, good or hostile, is one case, picked
//! by the Request-URI user of `on-request` (`sip:<case>@...`), the AOR user
//! of `on-register` and the best status of `on-branch-failure`.
//!
//! Configuration: `{"init": "fail" | "spin"}` makes `init` refuse or hang;
//! `{"always": "<case>"}` runs that `on-request` case for every request,
//! the load's smoke call included.
//!
//! | `on-request` case | what it does |
//! |---|---|
//! | anything else | proceed, `X-Policy: testing` |
//! | `busy` | reply 486 with `X-Why: test` |
//! | `relay` | two groups: a@ and b@ in parallel for 2 s, then c@ over a route |
//! | `redirect` | 302 to `sip:elsewhere@127.0.0.1`, Request-URI rewritten |
//! | `via` | an edit of Via (the host drops it) and `X-Ok: 1` |
//! | `crlf`, `reply-200`, `relay-bad`, `huge` | decisions the host must refuse |
//! | `spin`, `trap`, `panic`, `oom` | never returns, traps, panics, grows memory without bound |
//! | `calls` | `X-Calls`: `on-request` calls this instance has served |
//! | `kv` | `X-Hits` (`kv::incr("hits")`), `X-Last` (method of the previous `kv` call) |
//! | `ctx` | ctx `from-request`; `on-response` then echoes it in `X-Ctx` |
//! | `lookup` | `X-Bindings` (prefetched count), `X-Lookup` (`location::lookup("sip:bob@example.test")`) |
//! | `metrics` | `calls_total` += 2, one `latency_ms` observation, one badly named counter |
//! | `log` | 1000 log lines in one call (the host keeps 100 a second) |
//! | `hash` | a std `HashMap` (needs `wasi:random`), `X-Hash: 1` |
//! | `clock` | `X-Now: <clock::now_ms>` |

use std::cell::Cell;
use std::collections::HashMap;

use serde::Deserialize;
use switchyard_policy::prelude::*;
use switchyard_policy::{clock, kv, location, log, metrics};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    init: Option<String>,
    always: Option<String>,
}

thread_local! {
    /// `on-request` calls served by this instance (instances are recycled,
    /// so a fresh one starts at 0).
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// The probe policy.
pub struct Probe {
    always: Option<String>,
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn grow_memory() -> ! {
    loop {
        let chunk: Vec<u8> = Vec::with_capacity(1 << 20);
        std::mem::forget(std::hint::black_box(chunk));
    }
}

impl Probe {
    fn case(&self, case: &str, req: &Request) -> RequestDecision {
        match case {
            "busy" => {
                RequestDecision::respond(Reply::new(486, "Busy Here").with_header("X-Why", "test"))
            }
            "relay" => RequestDecision::relay([
                TargetGroup::parallel([
                    Target::uri("sip:a@127.0.0.1"),
                    Target::uri("sip:b@127.0.0.1:5070"),
                ])
                .timeout_ms(2000),
                TargetGroup::single(Target::uri("sip:c@127.0.0.1").route(["<sip:127.0.0.2;lr>"])),
            ]),
            "redirect" => RequestDecision::redirect(["sip:elsewhere@127.0.0.1"])
                .set_request_uri("sip:rewritten@127.0.0.1"),
            "via" => RequestDecision::proceed()
                .with_header("Via", "SIP/2.0/UDP 127.0.0.9;branch=z9hG4bKforged")
                .with_header("X-Ok", "1"),
            "crlf" => RequestDecision::proceed().with_header("X-Inject", "a\r\nVia: forged"),
            "reply-200" => RequestDecision::reply(200, "OK"),
            "relay-bad" => RequestDecision::relay_to([Target::uri("http://127.0.0.1/")]),
            "huge" => RequestDecision::proceed().with_header("X-Huge", "x".repeat(1 << 20)),
            "spin" => spin(),
            "trap" => trap(),
            "panic" => panic!("the probe panics on request"),
            "oom" => grow_memory(),
            "calls" => {
                RequestDecision::proceed().with_header("X-Calls", CALLS.with(Cell::get).to_string())
            }
            "kv" => {
                let hits = kv::incr("hits", 1, 0);
                let last = kv::get("last");
                kv::set("last", req.method(), 0);
                let mut d = RequestDecision::proceed().with_header("X-Hits", hits.to_string());
                if let Some(last) = last {
                    d = d.with_header("X-Last", String::from_utf8_lossy(&last).into_owned());
                }
                d
            }
            "ctx" => RequestDecision::proceed().with_ctx("from-request"),
            "lookup" => {
                let found: Vec<String> = location::lookup("sip:bob@example.test")
                    .iter()
                    .map(|b| format!("{};q={};exp={}", b.contact, b.q, b.expires_in))
                    .collect();
                RequestDecision::proceed()
                    .with_header("X-Bindings", req.bindings().len().to_string())
                    .with_header("X-Lookup", found.join(","))
            }
            "metrics" => {
                metrics::counter("calls_total", 1);
                metrics::counter("calls_total", 1);
                metrics::histogram("latency_ms", 1.5);
                metrics::counter("Bad-Name", 1);
                RequestDecision::proceed()
            }
            "log" => {
                for i in 0..1000 {
                    log::info(&format!("line {i}"));
                }
                RequestDecision::proceed()
            }
            "hash" => {
                let mut map = HashMap::new();
                map.insert(req.method().to_string(), 1);
                RequestDecision::proceed().with_header("X-Hash", map.len().to_string())
            }
            "clock" => RequestDecision::proceed().with_header("X-Now", clock::now_ms().to_string()),
            _ => RequestDecision::proceed().with_header("X-Policy", "testing"),
        }
    }
}

impl Policy for Probe {
    fn init(config: Config) -> Result<Self, String> {
        let settings: Settings = config.parse()?;
        match settings.init.as_deref() {
            Some("fail") => return Err("refused by test config".into()),
            Some("spin") => spin(),
            _ => {}
        }
        Ok(Probe {
            always: settings.always,
        })
    }

    fn on_request(&self, req: &Request) -> RequestDecision {
        CALLS.with(|c| c.set(c.get() + 1));
        let case = self.always.as_deref().or(req.ruri_user()).unwrap_or("");
        self.case(case, req)
    }

    fn on_register(&self, reg: &Register) -> RegisterDecision {
        match reg.aor_user() {
            Some("limit") => {
                RegisterDecision::limit(RegisterLimits::new().max_contacts(1).max_expires(600))
            }
            Some("reject") => RegisterDecision::reject(403, "Forbidden"),
            Some("trap") => trap(),
            _ => RegisterDecision::allow(),
        }
    }

    fn on_response(&self, resp: &Response) -> ResponseDecision {
        match resp.status() {
            183 => ResponseDecision::drop(),
            599 => trap(),
            _ if !resp.ctx().is_empty() => ResponseDecision::pass()
                .set_header("X-Ctx", String::from_utf8_lossy(resp.ctx()).into_owned())
                .with_ctx("from-response"),
            _ => ResponseDecision::pass(),
        }
    }

    fn on_branch_failure(&self, failure: &BranchFailure) -> FailureDecision {
        match failure.best_status() {
            486 => FailureDecision::relay([TargetGroup::single(Target::uri(
                "sip:voicemail@127.0.0.1",
            ))]),
            408 => FailureDecision::reply(480, "Temporarily Unavailable"),
            599 => spin(),
            _ => FailureDecision::fail(),
        }
    }

    fn on_complete(&self, _summary: &Summary) {
        kv::set("completed", "1", 0);
    }
}

switchyard_policy::export_policy!(Probe);
