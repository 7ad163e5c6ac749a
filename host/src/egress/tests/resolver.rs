//! `Rfc3263Resolver` and `Egress` with static hosts and an in-memory zone.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Zone, hop, tcp, udp};
use crate::egress::select::Query;
use crate::egress::{
    Allowlist, DnsLookup, Egress, EgressConfig, EgressError, HostEntry, NextHop, Resolver,
    Rfc3263Resolver, StaticHosts,
};
use crate::net::Destination;
use crate::net::Transport;

fn statics(entries: &[(&str, &[&str])]) -> StaticHosts {
    let map: HashMap<String, Vec<HostEntry>> = entries
        .iter()
        .map(|(name, addrs)| {
            (
                name.to_string(),
                addrs.iter().map(|a| a.parse().unwrap()).collect(),
            )
        })
        .collect();
    StaticHosts::new(&map)
}

fn no_dns(entries: &[(&str, &[&str])]) -> Rfc3263Resolver {
    Rfc3263Resolver::new(statics(entries), None)
}

fn with_zone(entries: &[(&str, &[&str])], zone: &Arc<Zone>) -> Rfc3263Resolver {
    let dns: Arc<dyn DnsLookup> = zone.clone();
    Rfc3263Resolver::new(statics(entries), Some(dns))
}

#[tokio::test]
async fn static_hosts_resolve_without_dns() {
    let r = no_dns(&[("UAS.test", &["127.0.0.1:5070", "127.0.0.2"])]);
    // Case-insensitive name, entry ports kept, 5060 for an entry without one.
    assert_eq!(
        r.resolve(&hop("uas.TEST.")).await,
        Ok(vec![udp("127.0.0.1:5070"), udp("127.0.0.2:5060")])
    );
    // The URI's explicit port and transport win over the entry.
    let explicit = hop("uas.test")
        .with_port(5090)
        .with_transport(Transport::Tcp);
    assert_eq!(
        r.resolve(&explicit).await,
        Ok(vec![tcp("127.0.0.1:5090"), tcp("127.0.0.2:5090")])
    );
}

#[tokio::test]
async fn dns_disabled_refuses_unknown_names_but_resolves_literals() {
    let r = no_dns(&[]);
    assert_eq!(
        r.resolve(&hop("example.com")).await,
        Err(EgressError::NoStaticEntry("example.com".into()))
    );
    assert_eq!(
        r.resolve(&hop("example.com").with_port(5060)).await,
        Err(EgressError::NoStaticEntry("example.com".into()))
    );
    assert_eq!(
        r.resolve(&hop("127.0.0.8")).await,
        Ok(vec![udp("127.0.0.8:5060")])
    );
}

#[tokio::test]
async fn sips_goes_over_tls_to_5061_naming_the_domain() {
    let r = no_dns(&[("uas.test", &["127.0.0.1"])]);
    let sips = NextHop::from_uri_parts("uas.test", None, None, None, true).unwrap();
    let expected = Destination::new(Transport::Tls, "127.0.0.1:5061".parse().unwrap())
        .with_tls_name("uas.test");
    assert_eq!(r.resolve(&sips).await, Ok(vec![expected]));
    // RFC 5630 §3.1: `transport=tcp` on a SIPS URI is still TLS.
    let tcp = NextHop::from_uri_parts("127.0.0.2", None, Some("tcp"), None, true).unwrap();
    assert_eq!(
        r.resolve(&tcp).await,
        Ok(vec![Destination::new(
            Transport::Tls,
            "127.0.0.2:5061".parse().unwrap()
        )])
    );
    // WebSocket is never dialled out: only clients' own connections.
    let ws = NextHop::from_uri_parts("uas.test", None, Some("ws"), None, false).unwrap();
    assert!(matches!(
        r.resolve(&ws).await,
        Err(EgressError::UnsupportedTransport(_))
    ));
}

#[tokio::test]
async fn static_hosts_come_before_dns() {
    let zone = Arc::new(Zone::new().a("uas.test", &["127.0.0.99"]));
    let r = with_zone(&[("uas.test", &["127.0.0.1"])], &zone);
    assert_eq!(
        r.resolve(&hop("uas.test")).await,
        Ok(vec![udp("127.0.0.1:5060")])
    );
    assert!(zone.asked().is_empty(), "DNS was asked: {:?}", zone.asked());
}

#[tokio::test]
async fn static_hosts_answer_for_srv_targets() {
    let zone = Arc::new(
        Zone::new()
            .naptr("d.test", 10, 10, "SIP+D2T", "_sip._tcp.d.test")
            .srv("_sip._tcp.d.test", 0, 0, 5071, "pbx.test"),
    );
    let r = with_zone(&[("pbx.test", &["127.0.0.3:9999"])], &zone);
    // The SRV port applies; the static entry supplies only the address.
    assert_eq!(
        r.resolve(&hop("d.test")).await,
        Ok(vec![tcp("127.0.0.3:5071")])
    );
    assert!(!zone.asked().contains(&Query::Addr("pbx.test".into())));
}

#[tokio::test]
async fn full_rfc3263_walk_through_the_lookup_trait() {
    let zone = Arc::new(
        Zone::new()
            .naptr("d.test", 10, 10, "SIP+D2U", "_sip._udp.d.test")
            .naptr("d.test", 20, 10, "SIP+D2T", "_sip._tcp.d.test")
            .srv("_sip._udp.d.test", 1, 0, 5060, "a.d.test")
            .srv("_sip._udp.d.test", 2, 0, 5062, "b.d.test")
            .srv("_sip._tcp.d.test", 1, 0, 5063, "a.d.test")
            .a("a.d.test", &["127.0.0.11"])
            .a("b.d.test", &["127.0.0.12"]),
    );
    let r = with_zone(&[], &zone);
    assert_eq!(
        r.resolve(&hop("d.test")).await,
        Ok(vec![
            udp("127.0.0.11:5060"),
            udp("127.0.0.12:5062"),
            tcp("127.0.0.11:5063")
        ])
    );
    // Each answer is asked for once even though the planner replays the walk.
    let asked = zone.asked();
    assert_eq!(asked.len(), 5, "{asked:?}");
}

#[tokio::test]
async fn weighted_srv_walk_converges_and_covers_every_target() {
    let mut zone = Zone::new();
    for i in 0..6u16 {
        zone = zone
            .srv("_sip._udp.d.test", 0, 10 + i, 5060, &format!("h{i}.d.test"))
            .a(&format!("h{i}.d.test"), &[&format!("127.0.2.{i}")]);
    }
    let zone = Arc::new(zone);
    let r = with_zone(&[], &zone);
    let dests = r
        .resolve(&hop("d.test").with_transport(Transport::Udp))
        .await
        .unwrap();
    assert_eq!(dests.len(), 6);
    // 1 SRV + 6 A lookups: no target asked twice, none asked in vain.
    assert_eq!(zone.asked().len(), 7, "{:?}", zone.asked());
}

#[tokio::test]
async fn a_failed_step_falls_through_to_the_next_rule() {
    // NAPTR times out: SRV and A are still tried (§4.3 spirit: keep going).
    let zone = Arc::new(Zone::new().broken("d.test").a("h.d.test", &["127.0.0.5"]));
    let zone2 = Arc::new(
        Zone::new()
            .broken("_sip._udp.d.test")
            .srv("_sip._tcp.d.test", 0, 0, 5070, "h.d.test")
            .a("h.d.test", &["127.0.0.5"]),
    );
    let r = with_zone(&[], &zone2);
    assert_eq!(
        r.resolve(&hop("d.test")).await,
        Ok(vec![tcp("127.0.0.5:5070")])
    );

    // When nothing is found at all, the failure is reported, not NotFound.
    let r = with_zone(&[], &zone);
    assert_eq!(
        r.resolve(&hop("d.test")).await,
        Err(EgressError::Dns {
            name: "d.test".into(),
            reason: "timed out".into()
        })
    );
}

#[tokio::test]
async fn egress_filters_by_allowlist_and_refuses_when_nothing_is_left() {
    let resolver = no_dns(&[
        ("mixed.test", &["192.0.2.1", "127.0.0.1:5070"]),
        ("foreign.test", &["192.0.2.7:5080"]),
    ]);
    let egress = Egress::new(
        Allowlist::new(["127.0.0.0/8".parse().unwrap()]),
        Arc::new(resolver),
    );
    assert_eq!(
        egress.resolve(&hop("mixed.test")).await,
        Ok(vec![udp("127.0.0.1:5070")])
    );
    assert_eq!(
        egress.resolve(&hop("foreign.test")).await,
        Err(EgressError::Forbidden("192.0.2.7:5080".parse().unwrap()))
    );
    assert_eq!(
        egress.resolve(&hop("192.0.2.1")).await,
        Err(EgressError::Forbidden("192.0.2.1:5060".parse().unwrap()))
    );
    assert_eq!(
        egress.resolve(&hop("127.0.0.2")).await,
        Ok(vec![udp("127.0.0.2:5060")])
    );
}

#[tokio::test]
async fn egress_from_config_uses_static_hosts_and_allowlist() {
    let config: EgressConfig = toml::from_str(
        r#"
        allow = ["127.0.0.0/8"]
        dns = false
        [hosts]
        "uas.test" = ["127.0.0.1:5070"]
        "evil.test" = ["192.0.2.66"]
        "#,
    )
    .unwrap();
    let egress = Egress::from_config(&config).unwrap();
    assert_eq!(
        egress.resolve(&hop("uas.test")).await,
        Ok(vec![udp("127.0.0.1:5070")])
    );
    assert_eq!(
        egress.resolve(&hop("evil.test")).await,
        Err(EgressError::Forbidden("192.0.2.66:5060".parse().unwrap()))
    );
    assert_eq!(
        egress.resolve(&hop("example.com")).await,
        Err(EgressError::NoStaticEntry("example.com".into()))
    );
}
