//! Server transactions: INVITE (RFC 3261 §17.2.1, RFC 6026 §8.7) and
//! non-INVITE (RFC 3261 §17.2.2).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::trace;

use super::timers::{Fired, Timer, TimerConfig, Timers};
use super::{Class, Disposition, Kind, TxError};
use crate::net::Transport;

/// Server transaction states. `Trying` is non-INVITE-only; `Confirmed` and
/// `Accepted` (RFC 6026) are INVITE-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// Something the TU must learn about; drained with
/// [`ServerTransaction::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H fired: no ACK came for our 300-699 final response to an
    /// INVITE (§17.2.1).
    AckTimeout,
    /// The transport failed to send a response (§17.2.4).
    TransportError,
    /// The transaction ended; its key may be forgotten. Always the last event.
    Terminated,
}

/// One received request and the responses the TU sends to it.
///
/// The transaction never invents a response: the TU sends 100 Trying for an
/// INVITE itself (§17.2.1 lets the TU do so within 200 ms; a proxy does it at
/// once, §16.2) and the transaction transmits it like any provisional.
#[derive(Debug)]
pub struct ServerTransaction {
    kind: Kind,
    reliable: bool,
    state: ServerState,
    config: TimerConfig,
    /// The most recent response, re-sent when the request is retransmitted
    /// (and on Timer G).
    last_response: Option<Bytes>,
    timers: Timers,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// A new request arrived that matched no transaction ([`ServerKey`](super::ServerKey)).
    /// No timer runs until the TU responds.
    pub fn new(kind: Kind, transport: Transport, config: &TimerConfig) -> Self {
        ServerTransaction {
            kind,
            reliable: transport.is_reliable(),
            state: match kind {
                Kind::Invite => ServerState::Proceeding,
                Kind::NonInvite => ServerState::Trying,
            },
            config: *config,
            last_response: None,
            timers: Timers::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The request was retransmitted. It is always absorbed; in Proceeding
    /// and Completed the last response is re-sent (§17.2.1, §17.2.2). Trying
    /// (nothing to re-send yet), Confirmed and Accepted (RFC 6026: the TU
    /// retransmits 2xx itself) send nothing.
    pub fn on_retransmission(&mut self) {
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            self.transmits.extend(self.last_response.clone());
        }
    }

    /// An ACK matched this (INVITE) transaction. An ACK for our 300-699
    /// response confirms it (Completed -> Confirmed) and is absorbed; in
    /// Accepted it is the TU's business (RFC 6026 §8.7). Anything else is
    /// absorbed.
    pub fn on_ack(&mut self, now: Instant) -> Disposition {
        match self.state {
            ServerState::Completed if self.kind == Kind::Invite => {
                // Timer G stops; Timer I absorbs further ACK retransmissions.
                self.timers.clear();
                self.set_state(ServerState::Confirmed);
                self.enter_wait(Timer::I, self.config.t4, now);
                Disposition::Absorb
            }
            ServerState::Accepted => Disposition::PassUp,
            _ => Disposition::Absorb,
        }
    }

    /// The TU sends `response` with code `status`.
    ///
    /// Provisional responses are allowed until the final one. A 2xx to an
    /// INVITE enters Accepted (RFC 6026), where further 2xx responses (the
    /// UAS's retransmissions, other forks) are still sent; anything else after
    /// a final response is refused.
    pub fn respond(&mut self, status: u16, response: Bytes, now: Instant) -> Result<(), TxError> {
        let class = Class::of(status).ok_or(TxError::InvalidStatus(status))?;
        match (self.kind, self.state, class) {
            (_, ServerState::Trying | ServerState::Proceeding, Class::Provisional) => {
                self.set_state(ServerState::Proceeding);
            }
            (Kind::Invite, ServerState::Proceeding, Class::Success) => {
                self.set_state(ServerState::Accepted);
                self.timers
                    .start_state(Timer::L, now + self.config.transaction_timeout());
            }
            (Kind::Invite, ServerState::Proceeding, Class::Failure) => {
                self.set_state(ServerState::Completed);
                // Timer G retransmits over UDP only; Timer H runs on every
                // transport: over TCP it still bounds the wait for the ACK.
                if !self.reliable {
                    self.timers.start_retransmit(Timer::G, now, self.config.t1);
                }
                self.timers
                    .start_state(Timer::H, now + self.config.transaction_timeout());
            }
            (Kind::Invite, ServerState::Accepted, Class::Success) => {}
            (Kind::NonInvite, ServerState::Trying | ServerState::Proceeding, _) => {
                self.set_state(ServerState::Completed);
                self.enter_wait(Timer::J, self.config.transaction_timeout(), now);
            }
            (_, state, _) => return Err(TxError::NotAllowed { status, state }),
        }
        self.transmits.push_back(response.clone());
        self.last_response = Some(response);
        Ok(())
    }

    /// The transport failed to send a response (§17.2.4). A non-INVITE
    /// transaction ends (§17.2.2). An INVITE transaction only informs the TU
    /// (RFC 6026 §8.7, Figure 7): Timer H or L still ends it, and in Accepted
    /// a 2xx may yet get through another way.
    pub fn on_transport_error(&mut self) {
        // Only these states send anything.
        let sending = matches!(
            self.state,
            ServerState::Proceeding | ServerState::Completed | ServerState::Accepted
        );
        if !sending {
            return;
        }
        self.events.push_back(ServerEvent::TransportError);
        if self.kind == Kind::NonInvite {
            self.terminate();
        }
    }

    /// The TU gives up without a final response: RFC 4320 §4.2 forbids a
    /// transaction-stateful element to answer a non-INVITE with 408, so a
    /// proxy whose branches all timed out lets the client time out itself.
    pub fn abandon(&mut self) {
        self.terminate();
    }

    /// Runs every timer due at `now`. Call it at (or after)
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(fired) = self.timers.pop_expired(now) {
            trace!(timer = ?fired, state = ?self.state, "server transaction timer");
            match fired {
                Fired::Retransmit { timer, interval } => {
                    // Timer G: min(2^n * T1, T2) (§17.2.1).
                    self.transmits.extend(self.last_response.clone());
                    let next = (interval * 2).min(self.config.t2);
                    self.timers.start_retransmit(timer, now, next);
                }
                Fired::State(Timer::H) => {
                    self.events.push_back(ServerEvent::AckTimeout);
                    self.terminate();
                }
                Fired::State(_) => self.terminate(),
            }
        }
    }

    /// The next response to send to the previous hop, if any. Responses
    /// queued before termination (e.g. the final response over TCP) can still
    /// be drained.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The response re-sent to retransmissions.
    pub fn last_response(&self) -> Option<&Bytes> {
        self.last_response.as_ref()
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// Enters a state that only absorbs retransmissions; reliable transports
    /// have none, so Timers I and J are zero there and the transaction ends
    /// at once (§17.2.1, §17.2.2).
    fn enter_wait(&mut self, timer: Timer, unreliable: Duration, now: Instant) {
        if self.reliable {
            self.terminate();
        } else {
            self.timers.start_state(timer, now + unreliable);
        }
    }

    fn set_state(&mut self, state: ServerState) {
        if self.state != state {
            trace!(from = ?self.state, to = ?state, kind = ?self.kind, "server transaction");
            self.state = state;
        }
    }

    fn terminate(&mut self) {
        if self.state != ServerState::Terminated {
            self.set_state(ServerState::Terminated);
            self.timers.clear();
            self.events.push_back(ServerEvent::Terminated);
        }
    }
}
