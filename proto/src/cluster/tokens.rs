//! What the tokens carry, and their compact binary form before sealing.
//!
//! Every field is length-prefixed; decoding checks every length, so a
//! token that opened (it was minted by a node of this cluster) but was
//! minted by an incompatible version fails cleanly instead of panicking.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::seal::InvalidToken;
use crate::net::{Source, Transport};

/// An RFC 5626 flow as seen by the edge node that owns it: the transport
/// and both addresses of the UA's connection or UDP association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowToken {
    /// The node holding the flow (`node_id` in its config).
    pub node: String,
    pub flow: Source,
    /// The UA can only be reached on this flow (outbound, TCP, behind
    /// NAT). Unpinned: the UA is reachable at its Contact; the token only
    /// names the edge it registered through.
    pub pinned: bool,
    /// Unix seconds after which no node honours the token: the end of the
    /// registration (Path) or of the longest dialog (Record-Route,
    /// rewritten Contact) it was minted for. A flow token lets a request
    /// past the egress allowlist, so it must not outlive what it stands for.
    pub expires_secs: u64,
}

impl FlowToken {
    /// Whether the registration or dialog the token was minted for can
    /// still exist at `now_secs`.
    pub fn is_live(&self, now_secs: u64) -> bool {
        now_secs <= self.expires_secs
    }
}

/// What a temp-GRUU decodes to (RFC 5627 §3.2): the AOR, the instance and
/// the registration generation it was minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempGruu {
    pub aor: String,
    /// `+sip.instance` as stored (`<urn:uuid:...>`).
    pub instance: String,
    /// Milliseconds since the epoch at which the instance's registration
    /// began. The GRUU is valid while a binding of the instance that is at
    /// least this old still exists: an instance that lapsed and registered
    /// again invalidates every earlier temp-GRUU.
    pub generation_ms: u64,
}

/// A Contact the edge node replaced (for a UA without GRUU support): the
/// original URI, the edge's address and the flow to reach the UA on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrittenContact {
    pub contact: String,
    /// The edge's own `host:port` and transport, as other nodes reach it.
    pub edge: String,
    pub edge_transport: Transport,
    pub flow: FlowToken,
}

/// What the dialog token in our Record-Route entries carries (with
/// `[auth]` on): when the dialog began, so an in-dialog request is routed
/// only when it came through a Record-Route of this cluster, and only while
/// the dialog can still exist (`auth.dialog_max_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogToken {
    pub started_secs: u64,
}

impl DialogToken {
    pub(super) fn encode(&self, w: &mut Writer) {
        w.u64(self.started_secs);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<DialogToken, InvalidToken> {
        Ok(DialogToken {
            started_secs: r.u64()?,
        })
    }
}

impl FlowToken {
    pub(super) fn encode(&self, w: &mut Writer) {
        w.str(&self.node);
        w.0.push(u8::from(self.pinned));
        w.u64(self.expires_secs);
        w.transport(self.flow.transport);
        w.addr(self.flow.local);
        w.addr(self.flow.remote);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<FlowToken, InvalidToken> {
        let node = r.str()?;
        let pinned = match r.take(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err(InvalidToken),
        };
        let expires_secs = r.u64()?;
        let transport = r.transport()?;
        let local = r.addr()?;
        let remote = r.addr()?;
        Ok(FlowToken {
            node,
            flow: Source {
                transport,
                remote,
                local,
            },
            pinned,
            expires_secs,
        })
    }
}

impl TempGruu {
    pub(super) fn encode(&self, w: &mut Writer) {
        w.str(&self.aor);
        w.str(&self.instance);
        w.u64(self.generation_ms);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<TempGruu, InvalidToken> {
        Ok(TempGruu {
            aor: r.str()?,
            instance: r.str()?,
            generation_ms: r.u64()?,
        })
    }
}

impl RewrittenContact {
    pub(super) fn encode(&self, w: &mut Writer) {
        w.str(&self.contact);
        w.str(&self.edge);
        w.transport(self.edge_transport);
        self.flow.encode(w);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RewrittenContact, InvalidToken> {
        Ok(RewrittenContact {
            contact: r.str()?,
            edge: r.str()?,
            edge_transport: r.transport()?,
            flow: FlowToken::decode(r)?,
        })
    }
}

#[derive(Default)]
pub(super) struct Writer(pub Vec<u8>);

impl Writer {
    fn str(&mut self, s: &str) {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn transport(&mut self, t: Transport) {
        // The wire code is the transport's place in `Transport::ALL`.
        let code = Transport::ALL.iter().position(|&x| x == t).unwrap_or(0);
        self.0.push(code as u8);
    }

    fn addr(&mut self, a: SocketAddr) {
        match a.ip() {
            IpAddr::V4(ip) => {
                self.0.push(4);
                self.0.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                self.0.push(6);
                self.0.extend_from_slice(&ip.octets());
            }
        }
        self.0.extend_from_slice(&a.port().to_be_bytes());
    }
}

pub(super) struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    pub(super) fn take(&mut self, n: usize) -> Result<&[u8], InvalidToken> {
        if self.0.len() < n {
            return Err(InvalidToken);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<String, InvalidToken> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| InvalidToken)?);
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| InvalidToken)
    }

    fn u64(&mut self) -> Result<u64, InvalidToken> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| InvalidToken)?,
        ))
    }

    fn transport(&mut self) -> Result<Transport, InvalidToken> {
        let code = self.take(1)?[0];
        Transport::ALL
            .get(usize::from(code))
            .copied()
            .ok_or(InvalidToken)
    }

    fn addr(&mut self) -> Result<SocketAddr, InvalidToken> {
        let ip = match self.take(1)?[0] {
            4 => {
                let o: [u8; 4] = self.take(4)?.try_into().map_err(|_| InvalidToken)?;
                IpAddr::V4(Ipv4Addr::from(o))
            }
            6 => {
                let o: [u8; 16] = self.take(16)?.try_into().map_err(|_| InvalidToken)?;
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(InvalidToken),
        };
        let port = u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| InvalidToken)?);
        Ok(SocketAddr::new(ip, port))
    }

    /// Trailing bytes mean a token of another format.
    pub fn finish(&self) -> Result<(), InvalidToken> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidToken)
        }
    }
}
