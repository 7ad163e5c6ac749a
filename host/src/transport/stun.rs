//! The STUN keep-alive of RFC 5626 §8 on our SIP UDP ports: a Binding
//! request (RFC 5389 §6) gets a Binding success response with the
//! XOR-MAPPED-ADDRESS the UA's packets come from, so it learns its NAT
//! binding and keeps it open. Only the edge that holds the flow sees these.

use std::net::{IpAddr, SocketAddr};

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const HEADER_LEN: usize = 20;

/// The response to a STUN Binding request, or `None` when `datagram` is
/// not one (SIP text never starts with the two zero bits STUN does).
pub(super) fn binding_response(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if datagram.len() < HEADER_LEN || datagram[0] & 0xC0 != 0 {
        return None;
    }
    let kind = u16::from_be_bytes([datagram[0], datagram[1]]);
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let cookie = u32::from_be_bytes(datagram[4..8].try_into().ok()?);
    if kind != BINDING_REQUEST || cookie != MAGIC_COOKIE || HEADER_LEN + length != datagram.len() {
        return None;
    }
    let transaction = &datagram[8..20];
    let mut value = vec![0u8];
    let port = from.port() ^ (MAGIC_COOKIE >> 16) as u16;
    match from.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            value.extend_from_slice(&port.to_be_bytes());
            let x = u32::from(ip) ^ MAGIC_COOKIE;
            value.extend_from_slice(&x.to_be_bytes());
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            value.extend_from_slice(&port.to_be_bytes());
            let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
            key.extend_from_slice(transaction);
            value.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
        }
    }
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + value.len());
    out.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    out.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(transaction);
    out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(&value);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1's request header (no attributes), answered for the
    /// RFC 5769 §2.2 mapped address 192.0.2.1:32853.
    #[test]
    fn answers_a_binding_request_with_the_xor_mapped_address() {
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        req.extend_from_slice(&[
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ]);
        let resp = binding_response(&req, "192.0.2.1:32853".parse().unwrap()).unwrap();
        assert_eq!(&resp[0..2], &[0x01, 0x01]);
        assert_eq!(&resp[8..20], &req[8..20], "same transaction id");
        // XOR-MAPPED-ADDRESS from RFC 5769 §2.2: port 0xa147, address e1 12 a6 43.
        assert_eq!(
            &resp[20..32],
            &[
                0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43
            ]
        );
    }

    #[test]
    fn ignores_sip_and_other_stun_messages() {
        let from = "127.0.0.1:5060".parse().unwrap();
        assert!(binding_response(b"OPTIONS sip:a SIP/2.0\r\n\r\n", from).is_none());
        let mut indication = vec![0x00, 0x11, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        indication.extend_from_slice(&[0; 12]);
        assert!(binding_response(&indication, from).is_none());
        assert!(binding_response(&[0; 19], from).is_none());
    }
}
