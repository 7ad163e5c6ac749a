//! The NAT and flow tests of the edge (RFC 3581, RFC 5626 §5).

use switchyard_codec::{HeaderName, Host, NameAddr, SipMessage, Uri};

use crate::net::{Source, Transport};

/// Unix seconds `lifetime` from now, plus a minute for the clocks of the
/// cluster's nodes to disagree.
pub(super) fn token_expiry(now_secs: u64, lifetime: u64) -> u64 {
    const CLOCK_SKEW_SECS: u64 = 60;
    now_secs
        .saturating_add(lifetime)
        .saturating_add(CLOCK_SKEW_SECS)
}

/// A UA registering itself over TCP (a Contact on the connection's host):
/// it is reached over its connection (RFC 3261 §18 connection reuse; many
/// TCP UAs do not listen at all). A third party registering another host's
/// Contact over TCP is not.
pub(super) fn tcp_to_itself(msg: &SipMessage, source: Source) -> bool {
    source.transport.is_connection()
        && msg.header_values(HeaderName::Contact).any(|c| {
            NameAddr::parse(c).is_ok_and(|na| {
                let host = na.uri.host.to_string();
                host.trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .ok()
                    == Some(source.remote.ip())
            })
        })
}

/// Whether a UA sending a dialog-forming request must be reached on the
/// flow it came on rather than at its Contact: TCP, behind NAT by its Via
/// or by its Contact, or asking for outbound (`ob` on its Contact URI).
pub fn dialog_needs_flow(msg: &SipMessage, source: Source) -> bool {
    if source.transport.is_connection() || via_behind_nat(msg, source) {
        return true;
    }
    let Some(contact) = msg
        .header(HeaderName::Contact)
        .and_then(|c| NameAddr::parse(c).ok())
    else {
        return false;
    };
    contact.uri.params.get("ob").is_some() || behind_nat(&contact.uri, source)
}

/// RFC 3581's test: the top Via's sent-by is not where the request came
/// from, so a NAT (or a sender that lies) is in between. Over TCP only the
/// address counts: a client's Via names its listening port, never the
/// ephemeral port its connection comes from.
pub(super) fn via_behind_nat(msg: &SipMessage, source: Source) -> bool {
    let Ok(via) = msg.top_via() else {
        return true;
    };
    not_where_packets_come_from(&via.host, via.port, source)
}

/// A Contact whose host:port is not where the UA's packets come from:
/// RFC 3581's NAT test, applied to the Contact. As for the Via, over TCP
/// only the address counts: the connection's port is ephemeral, never the
/// one a UA listens on and puts in its Contact.
pub(super) fn behind_nat(contact: &Uri<'_>, flow: Source) -> bool {
    not_where_packets_come_from(&contact.host, contact.port, flow)
}

/// The test both share: `host` is not the flow's address, or (over UDP)
/// `port` (5060 when absent) is not its port.
fn not_where_packets_come_from(host: &Host<'_>, port: Option<u16>, flow: Source) -> bool {
    !host.is_ip(flow.remote.ip())
        || (flow.transport == Transport::Udp && port.unwrap_or(5060) != flow.remote.port())
}

/// The same flow: transport and remote address (the local side of a UDP
/// flow can be any of our sockets of a listener).
pub(super) fn same_flow(a: &Source, b: &Source) -> bool {
    a.transport == b.transport && a.remote == b.remote
}
