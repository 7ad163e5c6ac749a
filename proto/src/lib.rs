//! # switchyard-proto: Switchyard's SIP protocol logic, sans-IO
//!
//! The state machines of the proxy that own no sockets, spawn no tasks and
//! never read the clock, in the style of `quinn-proto`: the caller feeds
//! them events with the current `Instant` and drains what they queued.
//!
//! | module | what | RFC |
//! |---|---|---|
//! | [`transaction`] | client and server transactions, INVITE and non-INVITE, and their timer queue | 3261 §17, 6026 |
//! | [`proxy`] | request validation and Route pre-processing, our own addresses ("is this URI mine?"), the response context (branches, q-groups, the best response, Max-Breadth), header edits, reason phrases | 3261 §16.3–16.7, 5393 |
//! | [`cluster`] | sealed tokens and the URIs they travel in: flow tokens, temp-GRUUs, rewritten Contacts, dialog tokens | 3327, 5626, 5627 |
//! | [`net`] | transports and message sources | 3261 §18 |
//!
//! Randomness is the caller's: branch ids take an `Rng` (seed one in tests
//! for repeatable bytes). The one exception is the AEAD nonce of a sealed
//! token, which always comes from the operating system's generator: a
//! repeated nonce would break ChaCha20-Poly1305, so no caller may choose it.
//!
//! It depends on the codec and a few pure crates (ChaCha20-Poly1305,
//! HKDF), so its tests build without the node's runtime, storage or
//! WebAssembly engine: `cargo test -p switchyard-proto`. The host crate
//! (`switchyard`) drives it and re-exports its modules under their old
//! paths (`switchyard::transaction`, `switchyard::proxy`...).

pub mod cluster;
pub mod dialog;
pub mod edge;
pub mod endpoint;
pub mod location;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod proxy_tx;
pub mod registrar;
pub mod transaction;
