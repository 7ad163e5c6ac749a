//! `switchyard-codec`: a zero-copy SIP message parser and splicing editor.
//!
//! * [`SipMessage::parse`] makes one structural pass over a `Bytes` buffer,
//!   recording the offsets of the start line, every header line (compact
//!   forms, folding and case-insensitive names understood) and the body.
//! * Typed views ([`Via`], [`NameAddr`], [`Uri`], [`CSeq`], ...) are parsed
//!   lazily from those offsets and borrow from the buffer.
//! * [`Editor`] applies the edits a proxy makes (RFC 3261 §16.6, RFC 3581)
//!   by splicing: untouched bytes are copied verbatim.
//! * [`validate_request`] / [`validate_response`] apply the receiver checks
//!   of RFC 3261, RFC 4475 and RFC 5118.
//! * [`frame`] splits a TCP byte stream into messages (RFC 3261 §18.3).
//!
//! No I/O and no async: the crate also builds for `wasm32-wasip2`.

mod edit;
mod error;
mod framing;
mod header;
mod message;
mod method;
mod name_addr;
mod params;
mod parse;
mod response;
mod scan;
pub mod text;
mod uri;
mod validate;
mod via;

pub use bytes::Bytes;

pub use edit::Editor;
pub use error::ParseError;
pub use framing::{FrameError, Framing, frame};
pub use header::{HeaderName, HeaderRef};
pub use message::{CSeq, SipMessage};
pub use method::Method;
pub use name_addr::{Contacts, NameAddr};
pub use params::{ParamIter, Params};
pub use response::{ResponseBuilder, build_ack_for_non2xx, build_cancel, response_to};
pub use uri::{Host, Scheme, Uri};
pub use validate::{Rejection, validate_request, validate_response};
pub use via::{BRANCH_MAGIC, Via};
