//! The dialog layer against SIPp (issue 17): calls counted per tenant
//! while SIPp holds them up, concurrent-call limits refusing exactly the
//! calls above them, and CDRs that match SIPp's own message log (count,
//! durations within 50 ms).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard::{Config, NodeHandle};
use switchyard_tests::sipp::{Sipp, SippResult, UAC_CALL, UAC_REGISTER, UAS_ANSWER};
use switchyard_tests::{DOMAIN, finish, ip, run_dir, start_node_with, stop, udp_addr};

const TENANT: &str = "acme";

/// A node serving DOMAIN as tenant `acme`, writing its CDRs to a file in
/// a fresh directory, with `limits` applied to the config.
async fn node(addr: &str, limits: impl FnOnce(&mut Config)) -> (NodeHandle, PathBuf) {
    let cdr = run_dir("cdr", addr).join("cdr.jsonl");
    let file = cdr.clone();
    let node = start_node_with(addr, move |c| {
        c.tenants.domains.insert(DOMAIN.into(), TENANT.into());
        c.dialogs.cdr.file = Some(file);
        limits(c);
    })
    .await;
    (node, cdr)
}

async fn register(node: &NodeHandle, from: std::net::IpAddr, uas: &str) {
    let s = Sipp::uac(UAC_REGISTER)
        .remote(udp_addr(node))
        .local(from, 0)
        .users(["bob"])
        .set("domain", DOMAIN)
        .set("uas", uas)
        .set("expires", "300");
    finish(s.spawn()).await.assert_success();
}

/// `calls` calls from SIPp to bob, each held `hold` after its ACK.
fn callers(node: &NodeHandle, from: std::net::IpAddr, calls: u64, hold: Duration) -> Sipp {
    Sipp::uac(UAC_CALL)
        .remote(udp_addr(node))
        .local(from, 0)
        .users(["bob"])
        .set("domain", DOMAIN)
        .calls(calls)
        .rate(100)
        .pause(hold)
        .timeout(Duration::from_secs(30))
}

/// Waits (up to 10 s) until `f` holds, polling the node's state.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn tenant_calls(node: &NodeHandle) -> (u32, i64) {
    node.calls().counts().get(TENANT).copied().unwrap_or((0, 0))
}

/// The CDR file's records, once it holds `n` of them.
async fn cdrs(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    until(&format!("{n} CDRs in {}", path.display()), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        lines.len() >= n
    })
    .await;
    assert_eq!(lines.len(), n, "{lines:#?}");
    let parse = |l: &String| serde_json::from_str(l).expect("a CDR is one JSON object");
    lines.iter().map(parse).collect()
}

/// Per Call-ID, the time from the INVITE's 200 OK received to the BYE
/// sent, as SIPp's message log (`-message_file`) has them.
fn sipp_durations(run: &SippResult) -> HashMap<String, Duration> {
    let text = &run.messages;
    let mut answered: HashMap<String, f64> = HashMap::new();
    let mut durations = HashMap::new();
    // Each entry: a line of dashes with the date and time, the direction,
    // a blank line, then the message.
    for entry in text
        .split("----------------------------------------------- ")
        .skip(1)
    {
        let mut lines = entry.lines();
        let stamp = lines.next().unwrap_or("");
        let secs = stamp
            .rsplit(['\t', ' '])
            .next()
            .and_then(|t| {
                let mut hms = t.split(':').map(|p| p.parse::<f64>().ok());
                Some(hms.next()?? * 3600.0 + hms.next()?? * 60.0 + hms.next()??)
            })
            .unwrap_or_else(|| panic!("a SIPp timestamp: {stamp:?}"));
        let direction = lines.next().unwrap_or("");
        let message: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let first = message.first().copied().unwrap_or("");
        let call_id = message
            .iter()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap_or("")
            .trim()
            .to_owned();
        let cseq_invite = message.iter().any(|l| l.starts_with("CSeq: 1 INVITE"));
        if direction.contains("received") && first.starts_with("SIP/2.0 200") && cseq_invite {
            answered.entry(call_id).or_insert(secs);
        } else if direction.contains("sent") && first.starts_with("BYE ") {
            let answer = answered[&call_id];
            durations.insert(call_id, Duration::from_secs_f64(secs - answer));
        }
    }
    durations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_while_up_and_their_cdrs_match_sipps_log() {
    let (node, cdr) = node("127.0.61.1", |_| {}).await;
    let uas = Sipp::uas(UAS_ANSWER).local(ip(61, 2), 5070).spawn();
    register(&node, ip(61, 3), "127.0.61.2:5070").await;
    let hold = Duration::from_millis(1500);
    let run = callers(&node, ip(61, 3), 6, hold)
        .trace_messages(true)
        .spawn();
    // All six are up at once: SIPp places them within 60 ms, holds each 1.5 s.
    until("6 calls of acme", || tenant_calls(&node) == (6, 6)).await;
    let run = finish(run).await;
    run.assert_calls(6, 0);
    until("no calls", || tenant_calls(&node) == (0, 0)).await;
    stop(uas).await.assert_calls(6, 0);

    let records = cdrs(&cdr, 6).await;
    let sipp = sipp_durations(&run);
    assert_eq!(sipp.len(), 6, "SIPp logged six answered calls");
    for r in &records {
        let call_id = r["call_id"].as_str().unwrap();
        let theirs = sipp[call_id];
        let ours = Duration::from_millis(r["duration_ms"].as_u64().unwrap());
        let diff = ours.abs_diff(theirs);
        assert!(
            diff <= Duration::from_millis(50),
            "{call_id}: CDR {ours:?}, SIPp {theirs:?}"
        );
        assert!(theirs >= hold, "{theirs:?}");
        assert_eq!(r["tenant"], TENANT);
        assert_eq!(r["status"], 200);
        assert_eq!(r["end_reason"], "caller-bye");
        assert_eq!(r["callee"], format!("bob@{DOMAIN}"));
        assert!(r["caller"].as_str().unwrap().starts_with("caller"));
        let (start, answer) = (r["start_ms"].as_u64(), r["answer_ms"].as_u64());
        assert!(start <= answer && answer.is_some(), "{r}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_limit_refuses_exactly_the_calls_above_it() {
    let (node, cdr) = node("127.0.62.1", |c| {
        let acme = c.dialogs.tenants.entry(TENANT.into()).or_default();
        acme.max_calls = Some(3);
    })
    .await;
    let uas = Sipp::uas(UAS_ANSWER).local(ip(62, 2), 5070).spawn();
    register(&node, ip(62, 3), "127.0.62.2:5070").await;
    // Five calls within 50 ms, each held 2 s: the first three are up when
    // the fourth and fifth arrive.
    let run = callers(&node, ip(62, 3), 5, Duration::from_secs(2)).spawn();
    let run = finish(run).await;
    run.assert_calls(3, 2);
    stop(uas).await.assert_calls(3, 0);
    let records = cdrs(&cdr, 5).await;
    let limited: Vec<_> = records
        .iter()
        .filter(|r| r["end_reason"] == "limited")
        .collect();
    assert_eq!(limited.len(), 2, "{records:#?}");
    assert!(limited.iter().all(|r| r["status"] == 503));
    assert_eq!(node.stats().calls_limited_tenant.get(), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limit_makes_the_user_busy() {
    let (node, cdr) = node("127.0.63.1", |c| c.dialogs.max_calls_per_user = 2).await;
    let uas = Sipp::uas(UAS_ANSWER).local(ip(63, 2), 5070).spawn();
    register(&node, ip(63, 3), "127.0.63.2:5070").await;
    let run = callers(&node, ip(63, 3), 4, Duration::from_secs(2)).spawn();
    finish(run).await.assert_calls(2, 2);
    stop(uas).await.assert_calls(2, 0);
    let records = cdrs(&cdr, 4).await;
    let busy = records.iter().filter(|r| r["status"] == 486).count();
    assert_eq!(busy, 2, "bob is in two calls: the other two are busy");
    assert_eq!(node.stats().calls_limited_user.get(), 2);

    // A reload lifts the limit for the calls routed after it.
    let mut lifted = node.config().clone();
    lifted.dialogs.max_calls_per_user = 0;
    node.set_config_source(std::sync::Arc::new(move || Ok(lifted.clone())));
    let report = node.reload().await.expect("reload");
    assert!(report.restart_needed.is_empty(), "{report:?}");
    let uas = Sipp::uas(UAS_ANSWER).local(ip(63, 2), 5070).spawn();
    let run = callers(&node, ip(63, 3), 4, Duration::from_millis(500)).spawn();
    finish(run).await.assert_calls(4, 0);
    stop(uas).await.assert_calls(4, 0);
    node.shutdown().await;
}
