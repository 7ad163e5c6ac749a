//! `GET /metrics`: node counters, per-tenant policy counters and the
//! metrics policies define themselves (`metrics` import), in the Prometheus
//! text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use switchyard_engine::tenants::Tenants;
use switchyard_engine::wasm::{HISTOGRAM_BOUNDS, Histogram, MetricsSnapshot};

pub(super) fn render(
    node: &[(&'static str, u64)],
    status: &crate::NodeStatus,
    tenants: &Tenants,
) -> String {
    let mut out = String::new();
    for (name, value) in node {
        let _ = writeln!(out, "# TYPE {name} counter\n{name} {value}");
    }
    render_gauges(&mut out, status);
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
    if let Some(engine) = tenants.engine() {
        render_guest(&mut out, &engine.metrics_snapshot());
    }
    out
}

/// The node's state now: transactions, connections, bindings, draining.
fn render_gauges(out: &mut String, status: &crate::NodeStatus) {
    let t = &status.transactions;
    let _ = writeln!(
        out,
        "# HELP switchyard_transactions Live transactions by kind.\n\
         # TYPE switchyard_transactions gauge\n\
         switchyard_transactions{{kind=\"server\"}} {}\n\
         switchyard_transactions{{kind=\"client\"}} {}\n\
         # HELP switchyard_transactions_unanswered Server transactions without a final response.\n\
         # TYPE switchyard_transactions_unanswered gauge\n\
         switchyard_transactions_unanswered {}\n\
         # HELP switchyard_dialogs Calls through this node (record-routed, answered, no BYE yet).\n\
         # TYPE switchyard_dialogs gauge\n\
         switchyard_dialogs {}\n\
         # HELP switchyard_timers Armed transaction timers.\n\
         # TYPE switchyard_timers gauge\n\
         switchyard_timers {}",
        t.server, t.client, t.unanswered, status.dialogs, t.timers
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_connections Open connections by transport.\n\
         # TYPE switchyard_connections gauge"
    );
    for (transport, open) in &status.connections {
        let _ = writeln!(
            out,
            "switchyard_connections{{transport=\"{}\"}} {open}",
            escape(transport)
        );
    }
    if let Some(bindings) = status.bindings {
        let _ = writeln!(
            out,
            "# HELP switchyard_bindings Registered contacts held by this node's store.\n\
             # TYPE switchyard_bindings gauge\nswitchyard_bindings {bindings}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_draining 1 once SIGTERM started the drain.\n\
         # TYPE switchyard_draining gauge\nswitchyard_draining {}\n\
         # HELP switchyard_uptime_seconds Seconds since the node started.\n\
         # TYPE switchyard_uptime_seconds gauge\nswitchyard_uptime_seconds {}",
        u8::from(status.draining),
        status.uptime_secs
    );
}

/// One family of guest metrics: every tenant's series of one name.
enum Family<'a> {
    Counter(Vec<(&'a str, u64)>),
    Histogram(Vec<(&'a str, &'a Histogram)>),
}

/// Guest metrics as `switchyard_guest_<name>{tenant="..."}`. Names are
/// already `[a-z0-9_]+` (the host drops others). Tenants may use one name
/// with different kinds; such a family keeps the kind seen first (tenants
/// in name order) and skips the others' series, since Prometheus allows
/// one type per family.
fn render_guest(out: &mut String, tenants: &[(String, MetricsSnapshot)]) {
    let mut families: BTreeMap<&str, Family<'_>> = BTreeMap::new();
    for (tenant, snapshot) in tenants {
        for (name, value) in &snapshot.counters {
            if let Family::Counter(series) = families
                .entry(name)
                .or_insert_with(|| Family::Counter(Vec::new()))
            {
                series.push((tenant, *value));
            }
        }
        for (name, histogram) in &snapshot.histograms {
            if let Family::Histogram(series) = families
                .entry(name)
                .or_insert_with(|| Family::Histogram(Vec::new()))
            {
                series.push((tenant, histogram));
            }
        }
    }
    for (name, family) in &families {
        match family {
            Family::Counter(series) => {
                let _ = writeln!(out, "# TYPE switchyard_guest_{name} counter");
                for (tenant, value) in series {
                    let _ = writeln!(
                        out,
                        "switchyard_guest_{name}{{tenant=\"{}\"}} {value}",
                        escape(tenant)
                    );
                }
            }
            Family::Histogram(series) => {
                let _ = writeln!(out, "# TYPE switchyard_guest_{name} histogram");
                for (tenant, h) in series {
                    let tenant = escape(tenant);
                    let mut cumulative = 0;
                    for (bound, count) in HISTOGRAM_BOUNDS.iter().zip(&h.buckets) {
                        cumulative += count;
                        let _ = writeln!(
                            out,
                            "switchyard_guest_{name}_bucket{{tenant=\"{tenant}\",le=\"{bound}\"}} {cumulative}"
                        );
                    }
                    let _ = writeln!(
                        out,
                        "switchyard_guest_{name}_bucket{{tenant=\"{tenant}\",le=\"+Inf\"}} {}\n\
                         switchyard_guest_{name}_sum{{tenant=\"{tenant}\"}} {}\n\
                         switchyard_guest_{name}_count{{tenant=\"{tenant}\"}} {}",
                        h.count, h.sum, h.count
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "# TYPE switchyard_guest_metrics_dropped_total counter");
    for (tenant, snapshot) in tenants {
        let _ = writeln!(
            out,
            "switchyard_guest_metrics_dropped_total{{tenant=\"{}\"}} {}",
            escape(tenant),
            snapshot.dropped
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_families_are_grouped_by_name_with_a_tenant_label() {
        let mut latency = Histogram {
            count: 2,
            sum: 3.0,
            ..Histogram::default()
        };
        latency.buckets[0] = 1;
        latency.buckets[HISTOGRAM_BOUNDS.len()] = 1;
        let tenants = vec![
            (
                "acme".to_string(),
                MetricsSnapshot {
                    counters: vec![("calls".into(), 3)],
                    histograms: vec![("latency_ms".into(), latency)],
                    dropped: 1,
                },
            ),
            (
                "globex".to_string(),
                MetricsSnapshot {
                    counters: vec![("calls".into(), 4), ("latency_ms".into(), 9)],
                    ..MetricsSnapshot::default()
                },
            ),
        ];
        let mut out = String::new();
        render_guest(&mut out, &tenants);
        assert_eq!(
            out.matches("# TYPE switchyard_guest_calls counter").count(),
            1
        );
        assert!(
            out.contains("switchyard_guest_calls{tenant=\"acme\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("switchyard_guest_calls{tenant=\"globex\"} 4\n"),
            "{out}"
        );
        let first = HISTOGRAM_BOUNDS[0];
        assert!(out.contains(&format!(
            "switchyard_guest_latency_ms_bucket{{tenant=\"acme\",le=\"{first}\"}} 1\n"
        )));
        assert!(
            out.contains("switchyard_guest_latency_ms_bucket{tenant=\"acme\",le=\"+Inf\"} 2\n")
        );
        assert!(out.contains("switchyard_guest_latency_ms_count{tenant=\"acme\"} 2\n"));
        // globex's counter of the same name is not mixed into the histogram.
        assert!(
            !out.contains("switchyard_guest_latency_ms{tenant=\"globex\"}"),
            "{out}"
        );
        assert!(out.contains("switchyard_guest_metrics_dropped_total{tenant=\"acme\"} 1\n"));
    }
}
