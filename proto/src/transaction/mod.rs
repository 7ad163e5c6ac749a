//! The SIP transaction layer: RFC 3261 §17 as updated by RFC 6026, sans-IO.
//!
//! The four state machines ([`ClientTransaction`] and [`ServerTransaction`],
//! each for INVITE and non-INVITE) own no sockets, spawn no tasks and never
//! read the clock. The caller (the proxy core, the "TU" in RFC terms) feeds
//! them events together with the current [`Instant`](std::time::Instant) and
//! then drains what
//! they queued, in the style of `quinn-proto`:
//!
//! ```text
//! let disposition = tx.on_response(status, now, |req| build_ack(req, &resp)); // or respond(), on_ack(), ...
//! while let Some(bytes) = tx.poll_transmit() { send(bytes) }
//! while let Some(event) = tx.poll_event() { handle(event) }
//! timers.set_deadline(&mut tx_timer, tx_index, tx.poll_timeout());
//! // later, from the timer task:
//! while let Some(tx_index) = timers.pop_expired(now) { txs[tx_index].handle_timeout(now); /* drain as above */ }
//! ```
//!
//! Messages are opaque [`Bytes`](bytes::Bytes): this layer never parses. The
//! caller parses once, finds the transaction by its [`ServerKey`] or
//! [`ClientKey`] and passes the status code. This keeps the layer independent
//! of the codec and trivially testable.
//!
//! Dispatch (RFC 3261 §17.2.3, §17.1.3): a request whose [`ServerKey`] is
//! known is an ACK ([`ServerTransaction::on_ack`]) or a retransmission
//! ([`ServerTransaction::on_retransmission`]); otherwise, unless it is an ACK,
//! it starts a [`ServerTransaction`]. A response whose [`ClientKey`] is
//! known goes to [`ClientTransaction::on_response`]; an unknown one is stray
//! and dropped (RFC 6026 changed proxies to no longer forward those).
//!
//! [`TimerQueue`] multiplexes the deadlines of many transactions so one
//! task can drive 100k+ of them.

mod client;
mod completed;
mod key;
pub mod response_delta;
mod server;
mod timer_queue;
mod timers;

#[cfg(test)]
mod tests;

use std::fmt;

pub use client::{ClientEvent, ClientState, ClientTransaction};
pub use completed::CompletedTable;
pub use key::{ClientKey, MAGIC_COOKIE, ServerKey, is_rfc3261_branch};
pub use server::{ServerEvent, ServerState, ServerTransaction};
pub use timer_queue::{TimerId, TimerQueue};
pub use timers::TimerConfig;

/// INVITE and non-INVITE transactions follow different state machines
/// (RFC 3261 §17). ACK never creates a transaction: an ACK for a non-2xx
/// final response belongs to the INVITE transaction, an ACK for a 2xx is
/// end-to-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Invite,
    NonInvite,
}

impl Kind {
    /// The kind of transaction a request with this method creates. Method
    /// names are case-sensitive (RFC 3261 §7.1), so `invite` is not INVITE.
    pub fn of_method(method: &str) -> Kind {
        if method == "INVITE" {
            Kind::Invite
        } else {
            Kind::NonInvite
        }
    }
}

/// What the TU should do with an incoming message a transaction has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Hand the message to the TU (for a proxy: forward it).
    PassUp,
    /// The transaction consumed it (a retransmission, or a message the
    /// state machine ignores); the TU must not see it.
    Absorb,
}

/// An action the TU asked for that the transaction's state forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("{0} is not a valid response status code (100-699)")]
    InvalidStatus(u16),
    #[error("cannot send a {status} response in the {state} state")]
    NotAllowed { status: u16, state: ServerState },
}

/// The response class the state machines branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Failure,
}

impl Class {
    /// `None` for codes outside 100-699 (RFC 3261 §7.2, §21).
    fn of(status: u16) -> Option<Class> {
        match status {
            100..=199 => Some(Class::Provisional),
            200..=299 => Some(Class::Success),
            300..=699 => Some(Class::Failure),
            _ => None,
        }
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for ClientState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
