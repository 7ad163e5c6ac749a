//! The cluster: the pure token and URI logic lives in
//! `switchyard_proto::cluster` (sealing, flow tokens, GRUUs, rewritten
//! Contacts); this module adds its `[cluster]` configuration.

mod config;

pub use config::{ClusterConfig, ContactRewrite, PathTransport};
pub use switchyard_proto::cluster::*;
