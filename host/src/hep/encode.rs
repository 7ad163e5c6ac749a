//! The HEPv3 wire format (sipcapture's "HEP3" specification, rev. 12):
//! a 6-byte header — the magic `HEP3` and the total length — then chunks,
//! each a vendor id (0x0000: generic), a type id and a length (the 6-byte
//! chunk header included), all big-endian, then the value.
//!
//! The chunks go in the order Kamailio's and captagent's senders use
//! (family, protocol, ports, time, protocol type, capture id, addresses,
//! auth key, correlation id, payload): some collectors still read them in
//! that order rather than by type.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchyard_codec::SipMessage;

/// Generic chunk type ids (vendor 0x0000).
pub mod chunk {
    pub const IP_FAMILY: u16 = 1;
    pub const IP_PROTO: u16 = 2;
    pub const IPV4_SRC: u16 = 3;
    pub const IPV4_DST: u16 = 4;
    pub const IPV6_SRC: u16 = 5;
    pub const IPV6_DST: u16 = 6;
    pub const SRC_PORT: u16 = 7;
    pub const DST_PORT: u16 = 8;
    pub const TIME_SEC: u16 = 9;
    pub const TIME_USEC: u16 = 10;
    pub const PROTO_TYPE: u16 = 11;
    pub const CAPTURE_ID: u16 = 12;
    pub const AUTH_KEY: u16 = 14;
    pub const PAYLOAD: u16 = 15;
    pub const CORRELATION_ID: u16 = 17;
}

/// Chunk 1 values: the address family (as in Linux's AF_INET, AF_INET6).
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// IP protocol ids (chunk 2).
pub const PROTO_UDP: u8 = 17;
pub const PROTO_TCP: u8 = 6;
/// Chunk 11: the payload is SIP.
const PROTO_TYPE_SIP: u8 = 1;

/// The 6-byte header of the packet and of every chunk.
const HEADER: usize = 6;

/// One captured message, as a HEP packet describes it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// [`PROTO_UDP`] or [`PROTO_TCP`].
    pub ip_proto: u8,
    pub time: SystemTime,
    pub capture_id: u32,
    /// The collector's password (chunk 14), when it asks for one.
    pub auth_key: Option<&'a [u8]>,
    /// What ties the packets of one call together (chunk 17): the Call-ID.
    pub correlation_id: Option<&'a [u8]>,
    /// The SIP message.
    pub payload: &'a [u8],
}

/// The packet would exceed HEP's 16-bit length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// Appends `packet` to `out` (which is cleared first).
pub fn encode(packet: &Packet<'_>, out: &mut Vec<u8>) -> Result<(), TooLarge> {
    out.clear();
    out.extend_from_slice(b"HEP3\0\0");
    let (src, dst) = same_family(packet.src.ip(), packet.dst.ip());
    let since = packet.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let family = match src {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    put(out, chunk::IP_FAMILY, &[family]);
    put(out, chunk::IP_PROTO, &[packet.ip_proto]);
    put(out, chunk::SRC_PORT, &packet.src.port().to_be_bytes());
    put(out, chunk::DST_PORT, &packet.dst.port().to_be_bytes());
    // u32 seconds: good until 2106.
    put(
        out,
        chunk::TIME_SEC,
        &(since.as_secs() as u32).to_be_bytes(),
    );
    put(out, chunk::TIME_USEC, &since.subsec_micros().to_be_bytes());
    put(out, chunk::PROTO_TYPE, &[PROTO_TYPE_SIP]);
    put(out, chunk::CAPTURE_ID, &packet.capture_id.to_be_bytes());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put(out, chunk::IPV4_SRC, &s.octets());
            put(out, chunk::IPV4_DST, &d.octets());
        }
        (s, d) => {
            put(out, chunk::IPV6_SRC, &v6(s).octets());
            put(out, chunk::IPV6_DST, &v6(d).octets());
        }
    }
    if let Some(key) = packet.auth_key {
        put_long(out, chunk::AUTH_KEY, key)?;
    }
    if let Some(id) = packet.correlation_id {
        put_long(out, chunk::CORRELATION_ID, id)?;
    }
    put_long(out, chunk::PAYLOAD, packet.payload)?;
    let total = u16::try_from(out.len()).map_err(|_| TooLarge)?;
    out[4..6].copy_from_slice(&total.to_be_bytes());
    Ok(())
}

/// One chunk whose value is known to be short.
fn put(out: &mut Vec<u8>, type_id: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&type_id.to_be_bytes());
    out.extend_from_slice(&((HEADER + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// One chunk of any length; too long for a chunk (or a packet) is an error.
fn put_long(out: &mut Vec<u8>, type_id: u16, value: &[u8]) -> Result<(), TooLarge> {
    if out.len() + HEADER + value.len() > usize::from(u16::MAX) {
        return Err(TooLarge);
    }
    put(out, type_id, value);
    Ok(())
}

/// Both addresses in one family: an IPv4-mapped IPv6 address (a dual-stack
/// socket's view of an IPv4 peer) is IPv4; otherwise a mix is all IPv6.
fn same_family(src: IpAddr, dst: IpAddr) -> (IpAddr, IpAddr) {
    match (src.to_canonical(), dst.to_canonical()) {
        (s @ IpAddr::V4(_), d @ IpAddr::V4(_)) => (s, d),
        (s, d) => (IpAddr::V6(v6(s)), IpAddr::V6(v6(d))),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The Call-ID of a SIP message (`Call-ID:` or the compact `i:`), found by
/// the codec's parser; `None` when the message does not parse or has none.
/// A view into `message`, not a copy.
pub fn call_id(message: &Bytes) -> Option<Bytes> {
    let parsed = SipMessage::parse(message.clone()).ok()?;
    let id = parsed.call_id().ok()?;
    Some(message.slice_ref(id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-1\r\n\
        Call-ID: abc@192.0.2.10\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn packet(auth_key: Option<&'static [u8]>) -> Packet<'static> {
        Packet {
            src: "192.0.2.10:5062".parse().unwrap(),
            dst: "192.0.2.1:5060".parse().unwrap(),
            ip_proto: PROTO_UDP,
            time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            capture_id: 2001,
            auth_key,
            correlation_id: Some(b"abc@192.0.2.10"),
            payload: OPTIONS,
        }
    }

    /// A chunk as the specification lays it out, for the expected bytes.
    fn chunk(type_id: u8, value: &[u8]) -> Vec<u8> {
        let len = 6 + value.len();
        let mut c = vec![0, 0, 0, type_id, (len >> 8) as u8, len as u8];
        c.extend_from_slice(value);
        c
    }

    #[test]
    fn an_ipv4_udp_message_encodes_byte_for_byte() {
        let mut out = Vec::new();
        encode(&packet(Some(b"s3cret")), &mut out).unwrap();
        let mut body = Vec::new();
        for c in [
            chunk(1, &[2]),
            chunk(2, &[17]),
            chunk(7, &[0x13, 0xc6]),              // 5062
            chunk(8, &[0x13, 0xc4]),              // 5060
            chunk(9, &[0x65, 0x53, 0xf1, 0x00]),  // 1700000000
            chunk(10, &[0x00, 0x01, 0xe2, 0x40]), // 123456 µs
            chunk(11, &[1]),
            chunk(12, &[0x00, 0x00, 0x07, 0xd1]), // 2001
            chunk(3, &[192, 0, 2, 10]),
            chunk(4, &[192, 0, 2, 1]),
            chunk(14, b"s3cret"),
            chunk(17, b"abc@192.0.2.10"),
            chunk(15, OPTIONS),
        ] {
            body.extend(c);
        }
        let total = 6 + body.len();
        let mut expected = b"HEP3".to_vec();
        expected.extend_from_slice(&[(total >> 8) as u8, total as u8]);
        expected.extend(body);
        assert_eq!(out, expected);
        // The fixed part, spelled out: magic, length, the first chunk.
        assert_eq!(&out[..13], b"HEP3\x01\x1b\x00\x00\x00\x01\x00\x07\x02");
        assert_eq!(out.len(), 0x11b);
    }

    #[test]
    fn ipv6_and_tcp_use_their_chunks_and_no_key_means_no_chunk() {
        let mut p = packet(None);
        p.src = "[2001:db8::10]:5062".parse().unwrap();
        p.dst = "[2001:db8::1]:5061".parse().unwrap();
        p.ip_proto = PROTO_TCP;
        let mut out = Vec::new();
        encode(&p, &mut out).unwrap();
        let chunks = walk(&out);
        let types: Vec<u16> = chunks.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, [1, 2, 7, 8, 9, 10, 11, 12, 5, 6, 17, 15]);
        assert_eq!(chunks[0].1, [10]);
        assert_eq!(chunks[1].1, [6]);
        let src: Ipv6Addr = "2001:db8::10".parse().unwrap();
        assert_eq!(chunks[8].1, src.octets());
    }

    #[test]
    fn a_mapped_ipv4_peer_is_reported_as_ipv4() {
        let mut p = packet(None);
        p.src = "[::ffff:192.0.2.10]:5062".parse().unwrap();
        let mut out = Vec::new();
        encode(&p, &mut out).unwrap();
        let chunks = walk(&out);
        assert_eq!(chunks[0].1, [2]);
        assert_eq!(chunks[8], (3, vec![192, 0, 2, 10]));
    }

    #[test]
    fn a_message_too_large_for_hep_is_refused() {
        let big = vec![b'x'; 65_500];
        let mut p = packet(None);
        p.payload = &big;
        assert_eq!(encode(&p, &mut Vec::new()), Err(TooLarge));
        let fits = vec![b'x'; 60_000];
        p.payload = &fits;
        assert!(encode(&p, &mut Vec::new()).is_ok());
    }

    #[test]
    fn the_call_id_is_found_in_either_form_and_only_in_the_headers() {
        let id = |m: &'static [u8]| call_id(&Bytes::from_static(m));
        assert_eq!(id(OPTIONS).as_deref(), Some(&b"abc@192.0.2.10"[..]));
        let compact = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h\r\ni:  x-1 \r\n\r\n";
        assert_eq!(id(compact).as_deref(), Some(&b"x-1"[..]));
        let lower = b"BYE sip:a SIP/2.0\ncall-id:y\n\n";
        assert_eq!(id(lower).as_deref(), Some(&b"y"[..]));
        let in_body = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 11\r\n\r\nCall-ID: z\r\n";
        assert_eq!(id(in_body), None);
        assert_eq!(id(b""), None);
    }

    /// The chunks of a packet: (type, value); checks every length.
    fn walk(packet: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&packet[..4], b"HEP3");
        let total = u16::from_be_bytes([packet[4], packet[5]]) as usize;
        assert_eq!(total, packet.len());
        let (mut at, mut out) = (6, Vec::new());
        while at < total {
            let vendor = u16::from_be_bytes([packet[at], packet[at + 1]]);
            let kind = u16::from_be_bytes([packet[at + 2], packet[at + 3]]);
            let len = u16::from_be_bytes([packet[at + 4], packet[at + 5]]) as usize;
            assert_eq!(vendor, 0);
            out.push((kind, packet[at + 6..at + len].to_vec()));
            at += len;
        }
        assert_eq!(at, total);
        out
    }
}
