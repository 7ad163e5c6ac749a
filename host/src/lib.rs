//! Switchyard host: the node that drives the protocol endpoint.
//!
//! The crates, bottom up (docs/architecture.md has the full picture):
//! - `switchyard-codec`: SIP syntax.
//! - `switchyard-proto`: every SIP behaviour, sans-IO: the endpoint
//!   ([`endpoint`]), one request's transactions ([`proxy_tx`]),
//!   [`transaction`], [`proxy`], [`registrar`] rules, [`edge`] and
//!   [`cluster`] tokens, the [`policy`] interface.
//! - `switchyard-location` ([`location`]), `switchyard-auth` ([`auth`]),
//!   `switchyard-cassandra` ([`cassandra`]): the stores and digest
//!   authentication.
//! - `switchyard-engine` ([`policy`]): tenants and the WebAssembly engine.
//! - `switchyard-admin` ([`admin`]): the admin endpoint and its client.
//!
//! This crate: [`transport`] (UDP/TCP sockets, framing, connection reuse),
//! [`egress`] (RFC 3263 next-hop resolution, the allowlist), [`hep`] (the
//! HEPv3 export to Homer), [`config`],
//! and [`node`], the driver that feeds the endpoint and performs its I/O.

pub use switchyard_admin as admin;
pub use switchyard_auth as auth;
pub use switchyard_cassandra as cassandra;
pub mod calls;
pub mod cluster;
pub mod config;
pub mod egress;
pub mod hep;
pub use switchyard_location as location;
pub mod node;
pub use switchyard_engine as policy;
pub mod registrar;
pub mod transport;
pub use switchyard_proto::{edge, endpoint, net, proxy, proxy_tx, transaction};

pub use config::Config;
pub use node::{Node, NodeHandle, NodeParts};
