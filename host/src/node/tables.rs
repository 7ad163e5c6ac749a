//! The node's transaction tables: server transactions by their §17.2.3 key,
//! client transactions (branches and their CANCELs) by their §17.1.3 key.
//! Sharded so the receive tasks of all cores rarely contend.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::core::TxRef;
use crate::transaction::{ClientKey, ServerKey};
use switchyard_proto::proxy_tx::{ProxyTx, Role};

const SHARDS: usize = 32;

struct Sharded<K, V> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, V>>>,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new() -> Self {
        Sharded {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

pub(crate) struct Tables {
    servers: Sharded<ServerKey, TxRef>,
    /// Live server transactions, kept alongside the shards so the cap is
    /// checked without locking all of them.
    servers_live: AtomicUsize,
    clients: Sharded<ClientKey, (Weak<Mutex<ProxyTx>>, Role)>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            servers: Sharded::new(),
            servers_live: AtomicUsize::new(0),
            clients: Sharded::new(),
        }
    }
}

/// What [`Tables::server_or_insert`] found.
pub(crate) enum ServerSlot {
    /// A retransmission: the transaction already exists.
    Existing(TxRef),
    /// A new request: its transaction was created.
    New(TxRef),
    /// A new request while `limits.max_transactions` are live.
    Full,
}

impl Tables {
    /// Finds the server transaction for `key`, or inserts the one `make`
    /// builds unless `max` are live already.
    pub fn server_or_insert(
        &self,
        key: ServerKey,
        max: usize,
        make: impl FnOnce(&ServerKey) -> ProxyTx,
    ) -> ServerSlot {
        let mut shard = self.servers.shard(&key).lock();
        if let Some(tx) = shard.get(&key) {
            return ServerSlot::Existing(tx.clone());
        }
        if self.servers_live.load(Ordering::Relaxed) >= max {
            return ServerSlot::Full;
        }
        let tx = Arc::new(Mutex::new(make(&key)));
        shard.insert(key, tx.clone());
        self.servers_live.fetch_add(1, Ordering::Relaxed);
        ServerSlot::New(tx)
    }

    pub fn server(&self, key: &ServerKey) -> Option<TxRef> {
        self.servers.shard(key).lock().get(key).cloned()
    }

    pub fn remove_server(&self, key: &ServerKey) {
        if self.servers.shard(key).lock().remove(key).is_some() {
            self.servers_live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn insert_client(&self, key: ClientKey, tx: &TxRef, role: Role) {
        self.clients
            .shard(&key)
            .lock()
            .insert(key, (Arc::downgrade(tx), role));
    }

    pub fn client(&self, key: &ClientKey) -> Option<(TxRef, Role)> {
        let shard = self.clients.shard(key).lock();
        let (weak, role) = shard.get(key)?;
        Some((weak.upgrade()?, *role))
    }

    pub fn remove_client(&self, key: &ClientKey) {
        self.clients.shard(key).lock().remove(key);
    }

    /// Live (server, client) transactions, for metrics and leak tests.
    pub fn counts(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }
}
