//! `GET /metrics`: everything the node, its transports, store and tenants'
//! policies count, encoded by `prometheus-client` (OpenMetrics text: HELP
//! and TYPE for every family, label values escaped). One [`Collector`]
//! reads the node at scrape time, so the hot paths keep their plain atomics.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use switchyard_engine::tenants::Tenants;
use switchyard_engine::wasm::{HISTOGRAM_BOUNDS, Histogram, MetricsSnapshot};

use crate::latency::HistogramSnapshot;
use crate::node::NodeControl;

/// The content type of the answer.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry a node's admin endpoint serves.
pub(super) fn registry(node: Arc<dyn NodeControl>, tenants: Arc<Tenants>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector { node, tenants }));
    registry
}

struct NodeCollector {
    node: Arc<dyn NodeControl>,
    tenants: Arc<Tenants>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

type Labels<'a> = [(&'static str, Escaped<'a>); 1];

/// A label value with `\\`, `"` and newlines escaped as the exposition
/// formats require (prometheus-client 0.24 writes values verbatim; tenant
/// names come from operators' files).
#[derive(Debug, Clone, Copy)]
struct Escaped<'a>(&'a str);

impl prometheus_client::encoding::EncodeLabelValue for Escaped<'_> {
    fn encode(&self, w: &mut prometheus_client::encoding::LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => w.write_str("\\\\")?,
                '"' => w.write_str("\\\"")?,
                '\n' => w.write_str("\\n")?,
                c => w.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One family of `kind` (counter or gauge) with one label, `series` =
/// (label value, value).
fn family(
    e: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &'static str,
    series: &[(&str, u64)],
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, kind)?;
    for (value_of_label, value) in series {
        let labels: Labels = [(label, Escaped(value_of_label))];
        let mut m = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, u64, u64>(value, None)?,
            _ => m.encode_gauge(value)?,
        }
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    label: &'static str,
    series: &[(&str, HistogramSnapshot)],
) -> std::fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (value_of_label, h) in series {
        let labels: Labels = [(label, Escaped(value_of_label))];
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets, None)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let counts = self.node.counters();
        for c in &counts {
            counter(&mut e, c.name.trim_end_matches("_total"), c.help, c.value)?;
        }
        let by_name: BTreeMap<&str, u64> = counts.iter().map(|c| (c.name, c.value)).collect();
        let drop = |name: &str| by_name.get(name).copied().unwrap_or(0);
        family(
            &mut e,
            (
                "switchyard_dropped",
                "Messages dropped or refused before routing, by reason.",
                MetricType::Counter,
            ),
            "reason",
            &[
                (
                    "parse",
                    drop("switchyard_dropped_malformed_total") + drop("switchyard_rejected_total"),
                ),
                ("stray", drop("switchyard_dropped_stray_total")),
                ("rate_limit", drop("switchyard_rate_limited_total")),
                ("allowlist", drop("switchyard_egress_refused_total")),
                (
                    "auth",
                    drop("switchyard_auth_failures_total")
                        + drop("switchyard_auth_throttled_total"),
                ),
                ("relay", drop("switchyard_relay_refused_total")),
                ("overload", drop("switchyard_overloaded_total")),
                ("draining", drop("switchyard_refused_draining_total")),
                (
                    "connection_cap",
                    drop("switchyard_tcp_refused_inbound_total")
                        + drop("switchyard_tcp_refused_per_source_total"),
                ),
            ],
        )?;
        let status = self.node.status();
        let t = &status.transactions;
        family(
            &mut e,
            (
                "switchyard_transactions",
                "Live transactions by kind.",
                MetricType::Gauge,
            ),
            "kind",
            &[("server", t.server), ("client", t.client)],
        )?;
        gauge(
            &mut e,
            "switchyard_transactions_completed",
            "Completed server transactions kept compact until Timer J (part of kind=server).",
            t.completed as i64,
        )?;
        gauge(
            &mut e,
            "switchyard_transactions_unanswered",
            "Server transactions without a final response.",
            t.unanswered as i64,
        )?;
        gauge(
            &mut e,
            "switchyard_timers",
            "Armed transaction timers.",
            t.timers as i64,
        )?;
        gauge(
            &mut e,
            "switchyard_dialogs",
            "Calls through this node (record-routed, answered, no BYE yet).",
            status.dialogs as i64,
        )?;
        let connections: Vec<(&str, u64)> = status
            .connections
            .iter()
            .map(|(transport, n)| (transport.as_str(), *n))
            .collect();
        family(
            &mut e,
            (
                "switchyard_connections",
                "Open connections (flows) by transport.",
                MetricType::Gauge,
            ),
            "transport",
            &connections,
        )?;
        let calls = self.node.calls();
        let series: Vec<(&str, u64)> = calls
            .iter()
            .map(|c| (c.tenant.as_str(), c.cluster.max(0) as u64))
            .collect();
        family(
            &mut e,
            (
                "switchyard_calls",
                "Calls in progress by tenant, across the cluster as this node knows it.",
                MetricType::Gauge,
            ),
            "tenant",
            &series,
        )?;
        if let Some(per_tenant) = self.node.bindings_per_tenant() {
            let series: Vec<(&str, u64)> =
                per_tenant.iter().map(|(t, n)| (t.as_str(), *n)).collect();
            family(
                &mut e,
                (
                    "switchyard_bindings",
                    "Registered contacts by tenant (embedded store).",
                    MetricType::Gauge,
                ),
                "tenant",
                &series,
            )?;
        }
        let latency = self.node.store_latency();
        let series: Vec<(&str, HistogramSnapshot)> =
            latency.iter().map(|(op, h)| (*op, h.clone())).collect();
        histogram(
            &mut e,
            (
                "switchyard_store_latency_seconds",
                "Location store calls by operation, as the node waited for them.",
            ),
            "operation",
            &series,
        )?;
        if let Some(state) = self.node.store_breaker() {
            let series: Vec<(&str, u64)> = ["closed", "open", "half_open"]
                .iter()
                .map(|s| (*s, u64::from(*s == state)))
                .collect();
            family(
                &mut e,
                (
                    "switchyard_store_breaker",
                    "The store's circuit breaker: 1 for the state it is in.",
                    MetricType::Gauge,
                ),
                "state",
                &series,
            )?;
        }
        gauge(
            &mut e,
            "switchyard_draining",
            "1 once SIGTERM started the drain.",
            i64::from(status.draining),
        )?;
        gauge(
            &mut e,
            "switchyard_uptime_seconds",
            "Seconds since the node started.",
            status.uptime_secs as i64,
        )?;
        self.encode_policies(&mut e)
    }
}

impl NodeCollector {
    fn encode_policies(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let list = self.tenants.list();
        for (name, help, value) in [
            (
                "switchyard_policy_calls",
                "Policy hook calls by tenant.",
                (|t: &switchyard_engine::tenants::TenantStatus| t.calls) as fn(&_) -> u64,
            ),
            (
                "switchyard_policy_failures",
                "Policy hook failures (trap, deadline, memory, bad decision) by tenant.",
                |t| t.failures,
            ),
        ] {
            let series: Vec<(&str, u64)> =
                list.iter().map(|t| (t.tenant.as_str(), value(t))).collect();
            family(e, (name, help, MetricType::Counter), "tenant", &series)?;
        }
        let series: Vec<(&str, u64)> = list
            .iter()
            .map(|t| (t.tenant.as_str(), u64::from(t.quarantined)))
            .collect();
        family(
            e,
            (
                "switchyard_policy_quarantined",
                "1 while a tenant's policy is quarantined.",
                MetricType::Gauge,
            ),
            "tenant",
            &series,
        )?;
        if let Some(engine) = self.tenants.engine() {
            gauge(
                e,
                "switchyard_policy_instances",
                "Policy instances alive now (pooled slots in use).",
                engine.live_instances() as i64,
            )?;
            gauge(
                e,
                "switchyard_policy_instances_max",
                "[policy] max_instances: the pool's size.",
                i64::from(engine.config().max_instances),
            )?;
            encode_guest(e, &engine.metrics_snapshot())?;
        }
        Ok(())
    }
}

/// One family of guest metrics: every tenant's series of one name.
enum Guest<'a> {
    Counter(Vec<(&'a str, u64)>),
    Histogram(Vec<(&'a str, HistogramSnapshot)>),
}

fn guest_histogram(h: &Histogram) -> HistogramSnapshot {
    HistogramSnapshot {
        buckets: HISTOGRAM_BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(h.buckets.iter().copied())
            .collect(),
        sum_secs: h.sum,
        count: h.count,
    }
}

/// Guest metrics as `switchyard_guest_<name>{tenant="..."}`. Names are
/// already `[a-z0-9_]+` (the host drops others). Tenants may use one name
/// with different kinds; such a family keeps the kind seen first (tenants
/// in name order) and skips the others' series, since Prometheus allows
/// one type per family.
fn encode_guest(
    e: &mut DescriptorEncoder,
    tenants: &[(String, MetricsSnapshot)],
) -> std::fmt::Result {
    let mut families: BTreeMap<&str, Guest<'_>> = BTreeMap::new();
    for (tenant, snapshot) in tenants {
        for (name, value) in &snapshot.counters {
            if let Guest::Counter(series) = families
                .entry(name)
                .or_insert_with(|| Guest::Counter(Vec::new()))
            {
                series.push((tenant, *value));
            }
        }
        for (name, histogram) in &snapshot.histograms {
            if let Guest::Histogram(series) = families
                .entry(name)
                .or_insert_with(|| Guest::Histogram(Vec::new()))
            {
                series.push((tenant, guest_histogram(histogram)));
            }
        }
    }
    for (name, family_of) in &families {
        let name = format!("switchyard_guest_{name}");
        match family_of {
            Guest::Counter(series) => family(
                e,
                (
                    &name,
                    "Defined by the tenant's policy.",
                    MetricType::Counter,
                ),
                "tenant",
                series,
            )?,
            Guest::Histogram(series) => histogram(
                e,
                (&name, "Defined by the tenant's policy."),
                "tenant",
                series,
            )?,
        }
    }
    let dropped: Vec<(&str, u64)> = tenants
        .iter()
        .map(|(t, s)| (t.as_str(), s.dropped))
        .collect();
    family(
        e,
        (
            "switchyard_guest_metrics_dropped",
            "Guest metric updates refused (bad name, too many series).",
            MetricType::Counter,
        ),
        "tenant",
        &dropped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Guests(Vec<(String, MetricsSnapshot)>);

    impl Collector for Guests {
        fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
            encode_guest(&mut e, &self.0)
        }
    }

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
                "glo\"bex".to_string(),
                MetricsSnapshot {
                    counters: vec![("calls".into(), 4), ("latency_ms".into(), 9)],
                    ..MetricsSnapshot::default()
                },
            ),
        ];
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Guests(tenants)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert_eq!(
            out.matches("# TYPE switchyard_guest_calls counter").count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("switchyard_guest_calls_total{tenant=\"acme\"} 3\n"),
            "{out}"
        );
        // Label values are escaped.
        assert!(
            out.contains("switchyard_guest_calls_total{tenant=\"glo\\\"bex\"} 4\n"),
            "{out}"
        );
        let first = HISTOGRAM_BOUNDS[0];
        assert!(
            out.contains(&format!(
                "switchyard_guest_latency_ms_bucket{{le=\"{first:?}\",tenant=\"acme\"}} 1\n"
            )) || out.contains(&format!(
                "switchyard_guest_latency_ms_bucket{{tenant=\"acme\",le=\"{first:?}\"}} 1\n"
            )),
            "{out}"
        );
        assert!(
            out.contains("le=\"+Inf\"")
                && out.contains("switchyard_guest_latency_ms_count{tenant=\"acme\"} 2\n"),
            "{out}"
        );
        // globex's counter of the same name is not mixed into the histogram.
        assert!(!out.contains("switchyard_guest_latency_ms_total"), "{out}");
        assert!(
            out.contains("switchyard_guest_metrics_dropped_total{tenant=\"acme\"} 1\n"),
            "{out}"
        );
        assert!(out.ends_with("# EOF\n"));
    }
}
