//! The proxy core of RFC 3261 §16, sans-IO: request validation and route
//! pre-processing ([`request`]), our own addresses ([`identity`]), the
//! response context that forks a request and picks the best answer
//! ([`fork`]), header edits to forwarded copies ([`edit`]) and reason
//! phrases ([`reason`]).

pub mod edit;
pub mod fork;
pub mod identity;
pub mod reason;
pub mod request;
