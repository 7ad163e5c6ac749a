//! The proxy core of RFC 3261 §16, sans-IO: request validation and route
//! pre-processing ([`request`]), our own addresses ([`identity`]) and the
//! response context that forks a request and picks the best answer ([`fork`]).

pub use switchyard_proto::fork;
pub mod identity;
pub use switchyard_proto::reason;
pub mod request;
