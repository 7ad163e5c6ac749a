//! Configuration and the pure arithmetic of fixed-window limits: window
//! keys, verdicts, Retry-After, and exempt networks. No host calls.

use std::net::IpAddr;

use serde::Deserialize;

/// The `config` table of a rate-limited tenant (see README.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Initial requests other than REGISTER allowed per source IP per
    /// second, averaged over `window_ms`. Absent: not limited.
    #[serde(default)]
    pub requests_per_second: Option<u32>,
    /// Length of a request window in ms (default 1000). Longer windows allow
    /// bursts: the limit per window is `requests_per_second * window_ms / 1000`.
    #[serde(default = "default_window_ms")]
    pub window_ms: u32,
    /// REGISTERs allowed per source IP per minute (fixed 60 s windows).
    /// Absent: not limited.
    #[serde(default)]
    pub registers_per_minute: Option<u32>,
    /// Only these methods count against `requests_per_second` (default: all).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Sources never limited: IP addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_window_ms() -> u32 {
    1000
}

/// A fixed-window limit: at most `limit` events per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Events allowed per window.
    pub limit: u32,
    /// Window length in ms.
    pub window_ms: u32,
}

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// Over the limit; the client may retry after this many seconds (the
    /// rest of the window, rounded up). `first` is true for the first
    /// rejected event of the window (log it once, not for every packet).
    Reject {
        /// Seconds until the window ends (at least 1).
        retry_after_s: u32,
        /// First rejection in this window.
        first: bool,
    },
}

impl Window {
    /// `per_second` events per second over windows of `window_ms`
    /// (rounded up, at least 1 per window).
    pub fn per_second(per_second: u32, window_ms: u32) -> Window {
        let limit = (u64::from(per_second) * u64::from(window_ms)).div_ceil(1000);
        Window {
            limit: u32::try_from(limit.max(1)).unwrap_or(u32::MAX),
            window_ms,
        }
    }

    /// The kv key counting `source`'s events of `kind` in the window that
    /// contains `now_ms`. The window number is part of the key, so a new
    /// window starts from zero without any reset.
    pub fn key(&self, kind: &str, source: &str, now_ms: u64) -> String {
        format!("rl:{kind}:{source}:{}", now_ms / u64::from(self.window_ms))
    }

    /// Time-to-live of a window's counter: it is useless after the window.
    pub fn ttl_ms(&self) -> u32 {
        self.window_ms
    }

    /// The verdict for the `count`-th event of the window at `now_ms`.
    pub fn verdict(&self, count: i64, now_ms: u64) -> Verdict {
        if count <= i64::from(self.limit) {
            return Verdict::Allow;
        }
        let window = u64::from(self.window_ms);
        let left_ms = window - now_ms % window;
        Verdict::Reject {
            retry_after_s: u32::try_from(left_ms.div_ceil(1000).max(1)).unwrap_or(u32::MAX),
            first: count == i64::from(self.limit) + 1,
        }
    }
}

/// An IP network (a single address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Result<Net, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("exempt: {s:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("exempt: {s:?} has an invalid prefix length")),
            },
        };
        Ok(Net { addr, prefix })
    }

    /// True if `ip` is inside the network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let w = Window::per_second(10, 1000);
        assert_eq!(w.limit, 10);
        assert_eq!(Window::per_second(10, 3000).limit, 30);
        assert_eq!(Window::per_second(1, 100).limit, 1);
        assert_eq!(w.key("req", "192.0.2.1", 12_345), "rl:req:192.0.2.1:12");
        assert_eq!(
            w.key("req", "192.0.2.1", 12_999),
            w.key("req", "192.0.2.1", 12_000)
        );
        assert_ne!(
            w.key("req", "192.0.2.1", 13_000),
            w.key("req", "192.0.2.1", 12_999)
        );
        assert_eq!(w.verdict(10, 12_345), Verdict::Allow);
        assert_eq!(
            w.verdict(11, 12_345),
            Verdict::Reject {
                retry_after_s: 1,
                first: true
            }
        );
        assert_eq!(
            w.verdict(12, 12_999),
            Verdict::Reject {
                retry_after_s: 1,
                first: false
            }
        );
        let minute = Window {
            limit: 5,
            window_ms: 60_000,
        };
        assert_eq!(
            minute.verdict(6, 60_000 + 15_500),
            Verdict::Reject {
                retry_after_s: 45,
                first: true
            }
        );
    }

    #[test]
    fn networks() {
        let n = Net::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        let one = Net::parse("2001:db8::1").unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        assert!(
            Net::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:1::9".parse().unwrap())
        );
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("host.example").is_err());
    }
}
