//! Switchyard host: a stateful SIP proxy and registrar.
//!
//! Layers, bottom up (docs/architecture.md has the full picture):
//! - [`transport`]: UDP/TCP sockets, framing, connection reuse.
//! - [`transaction`]: RFC 3261 §17 state machines, sans-IO.
//! - [`proxy`]: RFC 3261 §16 request checks, routing and forking, sans-IO.
//! - [`registrar`] and [`location`]: RFC 3261 §10.3 and the binding store.
//! - [`cassandra`]: the Cassandra/ScyllaDB location store and its operator tools.
//! - [`egress`]: RFC 3263 next-hop resolution and the egress allowlist.
//! - [`auth`]: digest authentication (RFC 7616/8760), subscribers, stateless nonces.
//! - [`policy`]: the hook interface routing policies implement.
//! - [`cluster`]: what makes N nodes one proxy: sealed flow tokens, GRUUs, rewritten Contacts.
//! - [`node`]: wires them together; the path of a message is in `node/core.rs`.

pub mod admin;
pub use switchyard_auth as auth;
pub use switchyard_cassandra as cassandra;
pub mod cluster;
pub mod config;
pub mod egress;
pub use switchyard_location as location;
pub use switchyard_proto::net;
pub mod node;
pub mod policy;
pub use switchyard_proto::proxy;
pub mod registrar;
pub use switchyard_proto::transaction;
pub mod transport;

pub use config::Config;
pub use node::{Node, NodeHandle, NodeParts};
