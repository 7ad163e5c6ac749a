//! Numbers and IP addresses as text, the way SIP writes them
//! (`192.0.2.1`, `[2001:db8::1]:5060`, `expires=3600`), without `core::fmt`.
//!
//! Every request the proxy handles writes its source address and a few
//! numbers somewhere (`received`, a flow token's Path, the policy's
//! `source`, a Contact's `expires`): through `Display` an IPv4 address
//! costs ~1500 instructions, more than parsing the Via it goes into. IPv4
//! and integers are written here digit by digit; IPv6, rare and long,
//! still goes through `Display`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Appends `ip` in its usual text form (IPv6 without brackets).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => push_ipv4(out, v4),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends a dotted-quad IPv4 address.
pub fn push_ipv4(out: &mut String, ip: Ipv4Addr) {
    out.push_str(ipv4_str(ip, &mut [0; 15]));
}

/// A dotted-quad IPv4 address written into `buf` (15 bytes is the longest).
pub fn ipv4_str(ip: Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let mut scratch = [0; 20];
        let digits = decimal(u64::from(octet), &mut scratch).as_bytes();
        buf[len..len + digits.len()].copy_from_slice(digits);
        len += digits.len();
    }
    std::str::from_utf8(&buf[..len]).expect("ASCII digits and dots")
}

/// Appends `addr` as `ip:port`, an IPv6 address in brackets (RFC 3986's
/// `host:port`, as `SocketAddr`'s `Display` writes it).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => push_ipv4(out, *v4.ip()),
        SocketAddr::V6(v6) => {
            let _ = write!(out, "[{}]", v6.ip());
        }
    }
    out.push(':');
    push_u16(out, addr.port());
}

/// `ip` as a new string.
pub fn ip_string(ip: IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// `addr` as a new string (`ip:port`).
pub fn socket_addr_string(addr: SocketAddr) -> String {
    let mut out = String::with_capacity(21);
    push_socket_addr(&mut out, addr);
    out
}

/// Appends a decimal number (a port, an octet, a status code).
pub fn push_u16(out: &mut String, n: u16) {
    push_u64(out, u64::from(n));
}

/// Appends a decimal number.
pub fn push_u64(out: &mut String, n: u64) {
    out.push_str(decimal(n, &mut [0; 20]));
}

/// `n` in decimal, written at the end of `buf` (20 digits is the longest).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[start..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_display_writes_them() {
        let cases: [SocketAddr; 6] = [
            "0.0.0.0:0".parse().unwrap(),
            "127.0.0.1:5060".parse().unwrap(),
            "255.255.255.255:65535".parse().unwrap(),
            "10.20.3.199:7".parse().unwrap(),
            "[::1]:5061".parse().unwrap(),
            "[2001:db8::ab:1]:40000".parse().unwrap(),
        ];
        for n in [0, 7, 10, 65535, u64::MAX] {
            let mut text = String::new();
            push_u64(&mut text, n);
            assert_eq!(text, n.to_string());
        }
        for addr in cases {
            assert_eq!(socket_addr_string(addr), addr.to_string());
            assert_eq!(ip_string(addr.ip()), addr.ip().to_string());
        }
    }
}
