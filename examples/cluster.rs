//! A Switchyard cluster in one process, for benchmarks and demos on one
//! machine: N nodes, each on its own address, sharing one embedded location
//! store (standing in for Cassandra) and one cluster secret.
//!
//!   cargo run --release -p switchyard --example cluster -- \
//!       --node 127.0.0.50 --node 127.0.0.51 --node 127.0.0.52 --domain bench.test
//!
//! Every node listens on UDP and TCP at `--port`; egress is limited to
//! loopback. It runs until interrupted. With a real shared store, run one
//! `switchyard run` per machine instead (docs/operations.md, "Cluster").

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use switchyard::location::{EmbeddedStore, LocationStore};
use switchyard::{Config, Node, NodeParts};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// One node per address (its id is `node-<n>`, first = 1).
    #[arg(long = "node", required = true)]
    nodes: Vec<IpAddr>,
    #[arg(long, default_value_t = 5060)]
    port: u16,
    #[arg(long, default_value = "switchyard.test")]
    domain: String,
    /// The shared secret (every node of the cluster must have the same).
    #[arg(long, default_value = "switchyard example cluster secret")]
    secret: String,
    /// `tracing` filter.
    #[arg(long, default_value = "warn")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store: Arc<dyn LocationStore> = Arc::new(EmbeddedStore::new());
        let mut nodes = Vec::new();
        for (i, ip) in args.nodes.iter().enumerate() {
            let mut config = Config {
                node_id: format!("node-{}", i + 1),
                listen: [
                    format!("udp:{ip}:{}", args.port),
                    format!("tcp:{ip}:{}", args.port),
                ]
                .iter()
                .map(|s| s.parse().expect("listener spec"))
                .collect(),
                domains: vec![args.domain.clone()],
                ..Config::default()
            };
            config.egress.allow = vec!["127.0.0.0/8".parse()?];
            config.egress.dns = false;
            config.admin.listen = None;
            config.cluster.secret = Some(args.secret.clone());
            // A demo and benchmark cluster on loopback: no subscribers.
            config.auth.enabled = false;
            let parts = NodeParts {
                store: Some(store.clone()),
                policies: None,
                counters: None,
            };
            let node = Node::start_with(config, parts)
                .await
                .with_context(|| format!("starting the node on {ip}"))?;
            eprintln!("node-{} listening on {ip}:{}", i + 1, args.port);
            nodes.push(node);
        }
        tokio::signal::ctrl_c().await?;
        for node in nodes {
            node.shutdown().await;
        }
        Ok(())
    })
}
