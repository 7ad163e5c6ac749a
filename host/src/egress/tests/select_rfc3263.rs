//! The pure RFC 3263 §4 rules. Nothing here touches the network: the zone
//! answers from memory, so RFC example names are kept as they are.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Zone, hop, tcp, udp};
use crate::egress::select::{self, MAX_DESTINATIONS, Query, Records, SrvRecord, Step};
use crate::egress::{EgressError, NextHop, Target};
use crate::net::Transport;

fn naptr(n: &str) -> Query {
    Query::Naptr(n.into())
}
fn srv(n: &str) -> Query {
    Query::Srv(n.into())
}
fn addr(n: &str) -> Query {
    Query::Addr(n.into())
}

/// The RFC 3263 §4.1 example zone, with SRV and A records added.
fn rfc_example_zone() -> Zone {
    Zone::new()
        .naptr("example.com", 50, 50, "SIPS+D2T", "_sips._tcp.example.com.")
        .naptr("example.com", 90, 50, "SIP+D2T", "_sip._tcp.example.com")
        .naptr("example.com", 100, 50, "SIP+D2U", "_sip._udp.example.com.")
        .srv("_sips._tcp.example.com", 0, 0, 5061, "tls.example.com.")
        .srv("_sip._tcp.example.com", 0, 0, 5060, "server1.example.com.")
        .srv("_sip._tcp.example.com", 1, 0, 5060, "server2.example.com.")
        .srv("_sip._udp.example.com", 0, 0, 5060, "server1.example.com.")
        .a("tls.example.com", &["192.0.2.9"])
        .a("server1.example.com", &["192.0.2.1"])
        .a("server2.example.com", &["192.0.2.2", "2001:db8::2"])
        .a("example.com", &["192.0.2.100"])
}

#[test]
fn numeric_ip_needs_no_lookup() {
    // §4.2: a numeric TARGET is used as is, default port 5060; §4.1: UDP.
    let zone = Zone::new();
    assert_eq!(
        zone.plan(&hop("192.0.2.1")),
        Ok(vec![udp("192.0.2.1:5060")])
    );
    let explicit = NextHop::from_uri_parts("[2001:db8::1]", Some(5070), Some("tcp"), None, false);
    assert_eq!(
        zone.plan(&explicit.unwrap()),
        Ok(vec![tcp("[2001:db8::1]:5070")])
    );
    assert!(zone.asked().is_empty());
}

#[test]
fn explicit_port_means_address_records_only() {
    // §4.2: "a port is present in the URI, the client performs an A or AAAA
    // record lookup"; §4.1: transport UDP when none is given.
    let zone = rfc_example_zone();
    let hop = hop("example.com").with_port(5080);
    assert_eq!(zone.plan(&hop), Ok(vec![udp("192.0.2.100:5080")]));
    assert_eq!(zone.asked(), vec![addr("example.com")]);

    let zone = rfc_example_zone();
    let hop = hop.with_transport(Transport::Tcp);
    assert_eq!(zone.plan(&hop), Ok(vec![tcp("192.0.2.100:5080")]));
    assert_eq!(zone.asked(), vec![addr("example.com")]);
}

#[test]
fn rfc_example_naptr_prefers_tcp_when_tls_is_unsupported() {
    // §4.1: the SIPS+D2T record (order 50) is discarded because we have no
    // TLS; SIP+D2T (90) comes before SIP+D2U (100). Each SRV set is walked in
    // priority order, and every A/AAAA of a target is a failover candidate.
    let zone = rfc_example_zone();
    let dests = zone.plan(&hop("example.com")).unwrap();
    assert_eq!(
        dests,
        vec![
            tcp("192.0.2.1:5060"),
            tcp("192.0.2.2:5060"),
            tcp("[2001:db8::2]:5060"),
            udp("192.0.2.1:5060"),
        ]
    );
    assert_eq!(
        zone.asked(),
        vec![
            naptr("example.com"),
            srv("_sip._tcp.example.com"),
            addr("server1.example.com"),
            addr("server2.example.com"),
            srv("_sip._udp.example.com"),
        ]
    );
}

#[test]
fn naptr_order_beats_preference_and_preference_breaks_ties() {
    let zone = Zone::new()
        .naptr("d.test", 20, 1, "SIP+D2T", "_sip._tcp.d.test")
        .naptr("d.test", 10, 90, "SIP+D2U", "_sip._udp.d.test")
        .naptr("d.test", 10, 10, "SIP+D2T", "_sip._tcp.alt.d.test")
        .srv("_sip._tcp.d.test", 0, 0, 5001, "h.d.test")
        .srv("_sip._udp.d.test", 0, 0, 5002, "h.d.test")
        .srv("_sip._tcp.alt.d.test", 0, 0, 5003, "h.d.test")
        .a("h.d.test", &["127.0.0.1"]);
    assert_eq!(
        zone.plan(&hop("d.test")),
        Ok(vec![
            tcp("127.0.0.1:5003"),
            udp("127.0.0.1:5002"),
            tcp("127.0.0.1:5001")
        ])
    );
}

#[test]
fn naptr_filtered_to_supported_transports() {
    // A client speaking only UDP drops the SIP+D2T record (§4.1 "discard any
    // service fields that identify a resolution service ... not supported").
    let zone = rfc_example_zone();
    let dests = zone.plan_with(&hop("example.com"), &[Transport::Udp], 1);
    assert_eq!(dests, Ok(vec![udp("192.0.2.1:5060")]));
    assert!(!zone.asked().contains(&srv("_sip._tcp.example.com")));
}

#[test]
fn without_naptr_srv_is_queried_per_supported_transport() {
    // §4.1: "If no NAPTR records are found, the client constructs SRV queries
    // for those transport protocols it supports". Only TCP exists here.
    let zone = Zone::new()
        .srv("_sip._tcp.d.test", 0, 0, 5070, "h.d.test")
        .a("h.d.test", &["127.0.0.2"])
        .a("d.test", &["127.0.0.9"]);
    assert_eq!(zone.plan(&hop("d.test")), Ok(vec![tcp("127.0.0.2:5070")]));
    assert_eq!(
        zone.asked(),
        vec![
            naptr("d.test"),
            srv("_sip._udp.d.test"),
            srv("_sip._tcp.d.test"),
            addr("h.d.test")
        ]
    );
}

#[test]
fn unusable_naptr_set_falls_back_to_srv() {
    // Only SCTP and TLS services: nothing we can use, so behave as if there
    // were no NAPTR records.
    let zone = Zone::new()
        .naptr("d.test", 10, 10, "SIP+D2S", "_sip._sctp.d.test")
        .naptr("d.test", 20, 10, "SIPS+D2T", "_sips._tcp.d.test")
        .srv("_sip._udp.d.test", 0, 0, 5090, "h.d.test")
        .a("h.d.test", &["127.0.0.3"]);
    assert_eq!(zone.plan(&hop("d.test")), Ok(vec![udp("127.0.0.3:5090")]));
}

#[test]
fn no_naptr_no_srv_means_udp_to_the_address_records() {
    // §4.1: "If no SRV records are found, the client SHOULD use ... UDP for a
    // SIP URI"; §4.2: at the default port.
    let zone = Zone::new().a("d.test", &["127.0.0.4", "::1"]);
    assert_eq!(
        zone.plan(&hop("d.test")),
        Ok(vec![udp("127.0.0.4:5060"), udp("[::1]:5060")])
    );
}

#[test]
fn transport_param_skips_naptr_and_queries_that_srv_only() {
    // §4.2: "because a transport was specified explicitly, the client performs
    // an SRV query for that specific transport".
    let zone = rfc_example_zone();
    let hop = hop("example.com").with_transport(Transport::Udp);
    assert_eq!(zone.plan(&hop), Ok(vec![udp("192.0.2.1:5060")]));
    assert_eq!(
        zone.asked(),
        vec![srv("_sip._udp.example.com"), addr("server1.example.com")]
    );

    // ... and without SRV, A/AAAA at the default port of that transport.
    let zone = Zone::new().a("d.test", &["127.0.0.5"]);
    let hop = super::hop("d.test").with_transport(Transport::Tcp);
    assert_eq!(zone.plan(&hop), Ok(vec![tcp("127.0.0.5:5060")]));
    assert_eq!(zone.asked(), vec![srv("_sip._tcp.d.test"), addr("d.test")]);
}

#[test]
fn naptr_whose_srv_is_empty_falls_back_to_address_records() {
    // §4.2: "If no SRV records were found, the client performs an A or AAAA
    // record lookup", with the transport NAPTR chose.
    let zone = Zone::new()
        .naptr("d.test", 10, 10, "SIP+D2T", "_sip._tcp.d.test")
        .a("d.test", &["127.0.0.6"]);
    assert_eq!(zone.plan(&hop("d.test")), Ok(vec![tcp("127.0.0.6:5060")]));
}

#[test]
fn srv_dot_target_means_not_available_and_blocks_fallback() {
    // RFC 2782: target "." = "decidedly not available at this domain".
    let zone = Zone::new()
        .srv("_sip._udp.d.test", 0, 0, 0, ".")
        .a("d.test", &["127.0.0.7"]);
    let hop = hop("d.test").with_transport(Transport::Udp);
    assert_eq!(zone.plan(&hop), Err(EgressError::NotFound("d.test".into())));
}

#[test]
fn nothing_found_is_an_error() {
    let zone = Zone::new();
    assert_eq!(
        zone.plan(&hop("nx.test")),
        Err(EgressError::NotFound("nx.test".into()))
    );
}

#[test]
fn sips_and_unsupported_transports_are_refused_before_any_lookup() {
    let zone = rfc_example_zone();
    let sips = NextHop::from_uri_parts("example.com", None, None, None, true).unwrap();
    assert_eq!(
        zone.plan(&sips),
        Err(EgressError::UnsupportedTransport("TLS".into()))
    );
    let tcp_hop = hop("example.com").with_transport(Transport::Tcp);
    assert_eq!(
        zone.plan_with(&tcp_hop, &[Transport::Udp], 1),
        Err(EgressError::UnsupportedTransport("TCP".into()))
    );
    assert!(zone.asked().is_empty());
}

#[test]
fn destinations_are_deduplicated_and_capped() {
    let mut zone = Zone::new();
    for i in 0..40u16 {
        zone = zone.srv("_sip._udp.d.test", i, 0, 5060, &format!("h{i}.d.test"));
        zone = zone.a(
            &format!("h{i}.d.test"),
            &[&format!("127.0.1.{i}"), "127.0.0.1"],
        );
    }
    let hop = hop("d.test").with_transport(Transport::Udp);
    let dests = zone.plan(&hop).unwrap();
    assert_eq!(dests.len(), MAX_DESTINATIONS);
    assert_eq!(
        dests[..3],
        [
            udp("127.0.1.0:5060"),
            udp("127.0.0.1:5060"),
            udp("127.0.1.1:5060")
        ]
    );
    // Lookups stop once the list is full.
    assert!(zone.asked().len() < 20, "{} lookups", zone.asked().len());
}

#[test]
fn planner_asks_for_one_missing_answer_at_a_time() {
    let hop = NextHop::new(Target::Domain("d.test".into()));
    let mut rng = StdRng::seed_from_u64(0);
    let mut records = Records::new();
    let both = [Transport::Udp, Transport::Tcp];
    assert_eq!(
        select::plan(&hop, &both, &records, &mut rng),
        Ok(Step::Lookup(naptr("d.test")))
    );
    records.insert_naptr("D.TEST.", vec![]);
    assert_eq!(
        select::plan(&hop, &both, &records, &mut rng),
        Ok(Step::Lookup(srv("_sip._udp.d.test")))
    );
}

fn srv_rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 5060,
        target: target.into(),
    }
}

#[test]
fn srv_priority_is_strict() {
    let records = [
        srv_rec(20, 100, "c"),
        srv_rec(10, 1, "a"),
        srv_rec(10, 1, "b"),
        srv_rec(30, 0, "d"),
    ];
    for seed in 0..50 {
        let ordered = select::order_srv(&records, &mut StdRng::seed_from_u64(seed));
        let targets: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert!(
            targets == ["a", "b", "c", "d"] || targets == ["b", "a", "c", "d"],
            "{targets:?}"
        );
    }
}

#[test]
fn srv_weights_are_proportional() {
    // RFC 2782: within a priority, selection probability ∝ weight. With
    // weights 1:3, "heavy" must come first in ~75% of draws.
    let records = [srv_rec(0, 1, "light"), srv_rec(0, 3, "heavy")];
    let mut rng = StdRng::seed_from_u64(42);
    let trials = 4000;
    let heavy_first = (0..trials)
        .filter(|_| select::order_srv(&records, &mut rng)[0].target == "heavy")
        .count();
    let share = heavy_first as f64 / trials as f64;
    assert!((0.72..0.78).contains(&share), "heavy first in {share}");
}

#[test]
fn srv_weight_zero_is_rarely_first() {
    // Weight 0 sits first in the running sum, so it wins only on a draw of 0:
    // probability 1/(sum+1) = 1/11 here.
    let records = [srv_rec(0, 10, "ten"), srv_rec(0, 0, "zero")];
    let mut rng = StdRng::seed_from_u64(9);
    let trials = 4000;
    let zero_first = (0..trials)
        .filter(|_| select::order_srv(&records, &mut rng)[0].target == "zero")
        .count();
    let share = zero_first as f64 / trials as f64;
    assert!((0.06..0.12).contains(&share), "zero first in {share}");
    // All-zero weights: every record is still returned.
    let zeros = [srv_rec(0, 0, "a"), srv_rec(0, 0, "b")];
    assert_eq!(select::order_srv(&zeros, &mut rng).len(), 2);
}
