//! Open TCP connections, inbound and outbound alike, so that a response goes
//! back over the connection its request came in on (RFC 3261 §18.2.2) and a
//! request to a peer reuses any connection we already have with it (§18.1.1).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::signal::CloseSignal;
use crate::net::{Source, Transport};

/// One message queued to a connection's writer. Boxed: the queue's
/// blocks hold 32 entries each, allocated with the connection, and a thin
/// pointer instead of a `Bytes` (32 bytes) keeps an idle connection's first
/// block at 256 bytes instead of 1 KiB.
pub(super) type Outgoing = Box<Bytes>;

/// A handle to one connection: its flow addresses, its writer queue and its
/// close signal. Cheap to clone; the lock is only held to copy one out.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    pub id: u64,
    pub transport: Transport,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub tx: mpsc::Sender<Outgoing>,
    pub close: Arc<CloseSignal>,
    /// Set after a framing error: the flow still takes the reply to the
    /// broken message, but no new requests.
    pub draining: Arc<AtomicBool>,
}

impl Conn {
    /// The flow this connection is.
    pub fn source(&self) -> Source {
        Source {
            transport: self.transport,
            remote: self.remote,
            local: self.local,
        }
    }

    pub fn is_usable_for_new_requests(&self) -> bool {
        !self.close.is_closed() && !self.draining.load(Ordering::Acquire)
    }
}

/// Keyed by remote address. Several connections can share one remote when they
/// end on different local addresses (two listeners), so each key holds a short
/// list, newest last.
#[derive(Debug, Default)]
pub(super) struct ConnTable {
    by_remote: Mutex<HashMap<SocketAddr, Vec<Conn>>>,
    next_id: AtomicU64,
}

impl ConnTable {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn insert(&self, conn: Conn) {
        self.by_remote
            .lock()
            .entry(conn.remote)
            .or_default()
            .push(conn);
    }

    /// Removes by id, so a connection that is going away never removes a newer
    /// one to the same peer.
    pub fn remove(&self, remote: SocketAddr, id: u64) {
        let mut map = self.by_remote.lock();
        if let Some(list) = map.get_mut(&remote) {
            list.retain(|c| c.id != id);
            if list.is_empty() {
                map.remove(&remote);
            }
        }
    }

    /// The connection of one flow (a `Source`), even if it is closing: a reply
    /// to a message that failed framing still goes out before the close.
    pub fn by_flow(&self, flow: &Source) -> Option<Conn> {
        let map = self.by_remote.lock();
        map.get(&flow.remote)?
            .iter()
            .rev()
            .find(|c| c.local == flow.local && c.transport == flow.transport)
            .cloned()
    }

    /// The newest open connection of `transport` to `remote`, for new requests.
    pub fn by_remote(&self, transport: Transport, remote: SocketAddr) -> Option<Conn> {
        let map = self.by_remote.lock();
        map.get(&remote)?
            .iter()
            .rev()
            .find(|c| c.transport == transport && c.is_usable_for_new_requests())
            .cloned()
    }

    /// Open connections per transport (gauges).
    pub fn count_by_transport(&self) -> Vec<(Transport, u64)> {
        let map = self.by_remote.lock();
        let conns: Vec<&Conn> = map.values().flatten().collect();
        Transport::ALL
            .into_iter()
            .filter(|t| t.is_connection())
            .map(|t| (t, conns.iter().filter(|c| c.transport == t).count() as u64))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_remote.lock().values().map(Vec::len).sum()
    }

    pub fn close_all(&self) {
        for list in self.by_remote.lock().values() {
            for conn in list {
                conn.close.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(table: &ConnTable, remote: &str, local: &str) -> Conn {
        let (tx, _rx) = mpsc::channel(1);
        let conn = Conn {
            id: table.next_id(),
            transport: Transport::Tcp,
            remote: remote.parse().unwrap(),
            local: local.parse().unwrap(),
            tx,
            close: Arc::default(),
            draining: Arc::default(),
        };
        table.insert(conn.clone());
        conn
    }

    #[test]
    fn finds_by_flow_and_newest_open_by_remote() {
        let table = ConnTable::default();
        let a = conn(&table, "127.0.0.2:4000", "127.0.0.1:5060");
        let b = conn(&table, "127.0.0.2:4000", "127.0.0.1:5070");
        assert_eq!(table.len(), 2);
        assert_eq!(table.by_remote(Transport::Tcp, a.remote).unwrap().id, b.id);
        assert!(table.by_remote(Transport::Tls, a.remote).is_none());
        assert_eq!(table.by_flow(&a.source()).unwrap().id, a.id);

        b.draining.store(true, Ordering::Release);
        assert_eq!(table.by_remote(Transport::Tcp, a.remote).unwrap().id, a.id);
        b.close.close();
        assert_eq!(table.by_remote(Transport::Tcp, a.remote).unwrap().id, a.id);
        // A closing flow is still found for its replies.
        assert_eq!(table.by_flow(&b.source()).unwrap().id, b.id);

        table.remove(b.remote, b.id);
        table.remove(a.remote, a.id + 100); // unknown id: no effect
        assert_eq!(table.len(), 1);
        table.remove(a.remote, a.id);
        assert!(table.by_remote(Transport::Tcp, a.remote).is_none());
        assert_eq!(table.len(), 0);
    }
}
