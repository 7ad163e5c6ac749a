//! A cluster of Switchyard nodes on one machine: nodes `a`, `b`, `c` on
//! 127.0.0.2, .3 and .4, each with UDP and TCP listeners on one fixed port
//! (so a stopped node can be restarted where it was), one shared cluster
//! secret and one shared location store, as a Cassandra cluster would be.

use std::net::SocketAddr;
use std::sync::Arc;

use switchyard::location::LocalCounters;
use switchyard::location::{EmbeddedStore, LocationStore};
use switchyard::{Config, Node, NodeHandle, NodeParts};

use crate::{DOMAIN, init_tracing};

pub const SECRET: &str = "cluster test secret, not for production";
pub const NAMES: [&str; 3] = ["a", "b", "c"];

pub struct TestCluster {
    nodes: Vec<Option<NodeHandle>>,
    store: Arc<EmbeddedStore>,
    /// The call counts the nodes add up (a Cassandra table in production).
    counters: Arc<LocalCounters>,
    port: u16,
    tweak: fn(&mut Config),
}

impl TestCluster {
    /// Three nodes listening on `port` (UDP and TCP) at 127.0.0.2–4.
    /// Tests running in parallel each take their own port.
    pub async fn start(port: u16) -> TestCluster {
        Self::start_with(port, |_| {}).await
    }

    pub async fn start_with(port: u16, tweak: fn(&mut Config)) -> TestCluster {
        init_tracing();
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            store: Arc::new(EmbeddedStore::new()),
            counters: Arc::default(),
            port,
            tweak,
        };
        for i in 0..NAMES.len() {
            let node = cluster.start_node(i).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    /// The IP of node `i` (0 = a).
    pub fn ip(i: usize) -> String {
        format!("127.0.0.{}", i + 2)
    }

    pub fn config(&self, i: usize) -> Config {
        let ip = Self::ip(i);
        let mut config = Config::for_tests(
            &[
                &format!("udp:{ip}:{}", self.port),
                &format!("tcp:{ip}:{}", self.port),
            ],
            &[DOMAIN],
        );
        config.node_id = NAMES[i].into();
        config.cluster.secret = Some(SECRET.into());
        (self.tweak)(&mut config);
        config
    }

    async fn start_node(&self, i: usize) -> NodeHandle {
        let parts = NodeParts {
            store: Some(self.store.clone() as Arc<dyn LocationStore>),
            policies: None,
            counters: Some(self.counters.clone()),
        };
        Node::start_with(self.config(i), parts)
            .await
            .unwrap_or_else(|e| panic!("node {} starts: {e:#}", NAMES[i]))
    }

    pub fn udp(&self, i: usize) -> SocketAddr {
        format!("{}:{}", Self::ip(i), self.port).parse().unwrap()
    }

    pub fn tcp(&self, i: usize) -> SocketAddr {
        self.udp(i)
    }

    pub fn node(&self, i: usize) -> &NodeHandle {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn store(&self) -> Arc<EmbeddedStore> {
        self.store.clone()
    }

    /// Stops node `i` (its sockets are closed when this returns).
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Starts node `i` again on the same addresses.
    pub async fn restart(&mut self, i: usize) {
        let node = self.start_node(i).await;
        self.nodes[i] = Some(node);
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}
