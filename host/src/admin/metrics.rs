//! `GET /metrics`: node counters and per-tenant policy counters in the
//! Prometheus text exposition format.

use std::fmt::Write as _;

use crate::policy::tenants::Tenants;

pub(super) fn render(node: &[(&'static str, u64)], tenants: &Tenants) -> String {
    let mut out = String::new();
    for (name, value) in node {
        let _ = writeln!(out, "# TYPE {name} counter\n{name} {value}");
    }
    let list = tenants.list();
    let _ = writeln!(out, "# TYPE switchyard_policy_calls_total counter");
    for t in &list {
        let _ = writeln!(
            out,
            "switchyard_policy_calls_total{{tenant=\"{}\",version=\"{}\"}} {}",
            escape(&t.tenant),
            t.version,
            t.calls
        );
    }
    let _ = writeln!(out, "# TYPE switchyard_policy_failures_total counter");
    for t in &list {
        let _ = writeln!(
            out,
            "switchyard_policy_failures_total{{tenant=\"{}\",version=\"{}\"}} {}",
            escape(&t.tenant),
            t.version,
            t.failures
        );
    }
    let _ = writeln!(out, "# TYPE switchyard_policy_quarantined gauge");
    for t in &list {
        let _ = writeln!(
            out,
            "switchyard_policy_quarantined{{tenant=\"{}\"}} {}",
            escape(&t.tenant),
            u8::from(t.quarantined)
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
