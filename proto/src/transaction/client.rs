//! Client transactions: INVITE (RFC 3261 §17.1.1, RFC 6026 §8.4) and
//! non-INVITE (RFC 3261 §17.1.2).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::trace;

use super::timers::{Fired, Timer, TimerConfig, Timers};
use super::{Class, Disposition, Kind};
use crate::net::Transport;

/// Client transaction states. `Calling` is INVITE-only, `Trying` is
/// non-INVITE-only, `Accepted` is the INVITE state RFC 6026 added for 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// Something the TU must learn about; drained with
/// [`ClientTransaction::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// Timer B or F fired: no final response came. A proxy treats this as a
    /// 408 from the branch (RFC 3261 §16.7 step 2).
    Timeout,
    /// The transport failed to send the request or the ACK (§17.1.4).
    TransportError,
    /// The transaction ended; its key may be forgotten. Always the last event.
    Terminated,
}

/// One request sent to one next hop, and its responses.
///
/// Created with the request, which [`poll_transmit`](Self::poll_transmit)
/// then yields for the initial send.
#[derive(Debug)]
pub struct ClientTransaction {
    kind: Kind,
    reliable: bool,
    state: ClientState,
    config: TimerConfig,
    request: Bytes,
    /// The ACK for a non-2xx final response (INVITE only), kept to answer
    /// retransmissions of that response (§17.1.1.2).
    ack: Option<Bytes>,
    timers: Timers,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts the transaction: queues `request` for sending and arms Timer B
    /// (INVITE) or F (non-INVITE), plus A or E on unreliable transports.
    pub fn new(
        kind: Kind,
        transport: Transport,
        request: Bytes,
        config: &TimerConfig,
        now: Instant,
    ) -> Self {
        let reliable = transport.is_reliable();
        let (state, retransmit, timeout) = match kind {
            Kind::Invite => (ClientState::Calling, Timer::A, Timer::B),
            Kind::NonInvite => (ClientState::Trying, Timer::E, Timer::F),
        };
        let mut timers = Timers::default();
        if !reliable {
            timers.start_retransmit(retransmit, now, config.t1);
        }
        timers.start_state(timeout, now + config.transaction_timeout());
        ClientTransaction {
            kind,
            reliable,
            state,
            config: *config,
            transmits: VecDeque::from([request.clone()]),
            request,
            ack: None,
            timers,
            events: VecDeque::new(),
        }
    }

    /// A response matching this transaction ([`ClientKey`](super::ClientKey))
    /// arrived. Returns whether the TU should see it.
    ///
    /// `build_ack` is called, with the original request, exactly once: when
    /// the first 300-699 response to an INVITE arrives. It must build the ACK
    /// of RFC 3261 §17.1.1.3 (Request-URI, Call-ID, From, top Via and CSeq
    /// number of the request, To of the response, method ACK); the
    /// transaction sends it and re-sends it for every retransmission of that
    /// response. Non-INVITE transactions never call it.
    ///
    /// Codes outside 100-699 are absorbed.
    pub fn on_response(
        &mut self,
        status: u16,
        now: Instant,
        build_ack: impl FnOnce(&Bytes) -> Bytes,
    ) -> Disposition {
        let Some(class) = Class::of(status) else {
            return Disposition::Absorb;
        };
        match self.kind {
            Kind::Invite => self.invite_response(class, now, build_ack),
            Kind::NonInvite => self.non_invite_response(class, now),
        }
    }

    /// §17.1.1.2 with RFC 6026 §8.4: 2xx moves to Accepted, not Terminated,
    /// so that retransmitted and forked 2xx responses still match this
    /// transaction and reach the TU.
    fn invite_response(
        &mut self,
        class: Class,
        now: Instant,
        build_ack: impl FnOnce(&Bytes) -> Bytes,
    ) -> Disposition {
        use ClientState::*;
        match (self.state, class) {
            (Calling | Proceeding, Class::Provisional) => {
                // No more retransmissions, and Timer B only guards Calling:
                // once someone answers, the TU's Timer C (§16.6) takes over.
                self.timers.clear();
                self.set_state(Proceeding);
                Disposition::PassUp
            }
            (Calling | Proceeding, Class::Success) => {
                self.timers.clear();
                self.timers
                    .start_state(Timer::M, now + self.config.transaction_timeout());
                self.set_state(Accepted);
                Disposition::PassUp
            }
            (Calling | Proceeding, Class::Failure) => {
                let ack = build_ack(&self.request);
                self.transmits.push_back(ack.clone());
                self.ack = Some(ack);
                self.timers.clear();
                self.set_state(Completed);
                self.enter_wait(Timer::D, self.config.timer_d(), now);
                Disposition::PassUp
            }
            (Completed, Class::Failure) => {
                // A retransmission: our ACK was lost.
                self.transmits.extend(self.ack.clone());
                Disposition::Absorb
            }
            (Accepted, Class::Success) => Disposition::PassUp,
            _ => Disposition::Absorb,
        }
    }

    /// §17.1.2.2.
    fn non_invite_response(&mut self, class: Class, now: Instant) -> Disposition {
        use ClientState::*;
        match (self.state, class) {
            (Trying | Proceeding, Class::Provisional) => {
                // Timer E keeps running; it switches to T2 on its next firing.
                self.set_state(Proceeding);
                Disposition::PassUp
            }
            (Trying | Proceeding, Class::Success | Class::Failure) => {
                self.timers.clear();
                self.set_state(Completed);
                self.enter_wait(Timer::K, self.config.t4, now);
                Disposition::PassUp
            }
            _ => Disposition::Absorb,
        }
    }

    /// The transport failed to send something this transaction queued
    /// (§17.1.4). Ends the transaction in the states that send (Calling,
    /// Trying, non-INVITE Proceeding, INVITE Completed); ignored elsewhere.
    pub fn on_transport_error(&mut self) {
        use ClientState::*;
        let sending = match self.kind {
            Kind::Invite => matches!(self.state, Calling | Completed),
            Kind::NonInvite => matches!(self.state, Trying | Proceeding),
        };
        if sending {
            self.events.push_back(ClientEvent::TransportError);
            self.end();
        }
    }

    /// The TU gives up on this transaction: after Timer C (§16.8), or 64*T1
    /// after a CANCEL that brought no final response (§9.1). Nothing more is
    /// sent and later responses no longer match.
    pub fn terminate(&mut self) {
        if self.state != ClientState::Terminated {
            trace!(state = ?self.state, "client transaction abandoned by the TU");
        }
        self.end();
    }

    /// Runs every timer due at `now`. Call it at (or after)
    /// [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(fired) = self.timers.pop_expired(now) {
            trace!(timer = ?fired, state = ?self.state, "client transaction timer");
            match fired {
                Fired::Retransmit { timer, interval } => {
                    self.transmits.push_back(self.request.clone());
                    let next = self.next_interval(interval);
                    self.timers.start_retransmit(timer, now, next);
                }
                Fired::State(Timer::B | Timer::F) => {
                    self.events.push_back(ClientEvent::Timeout);
                    self.end();
                }
                Fired::State(_) => self.end(),
            }
        }
    }

    /// Timer A doubles without bound (§17.1.1.2: Timer B stops it after six
    /// retransmissions); Timer E doubles up to T2 in Trying and is T2 in
    /// Proceeding (§17.1.2.2).
    fn next_interval(&self, elapsed: Duration) -> Duration {
        match (self.kind, self.state) {
            (Kind::Invite, _) => elapsed * 2,
            (Kind::NonInvite, ClientState::Proceeding) => self.config.t2,
            (Kind::NonInvite, _) => (elapsed * 2).min(self.config.t2),
        }
    }

    /// The next message to send to the next hop, if any. Messages queued
    /// before termination (e.g. the ACK over TCP) can still be drained.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// The request this transaction sends (e.g. to build a CANCEL, §9.1).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// Enters a state that only waits for stray retransmissions; reliable
    /// transports have none, so Timers D and K are zero there and the
    /// transaction ends at once (§17.1.1.2, §17.1.2.2).
    fn enter_wait(&mut self, timer: Timer, unreliable: Duration, now: Instant) {
        if self.reliable {
            self.end();
        } else {
            self.timers.start_state(timer, now + unreliable);
        }
    }

    fn set_state(&mut self, state: ClientState) {
        if self.state != state {
            trace!(from = ?self.state, to = ?state, kind = ?self.kind, "client transaction");
            self.state = state;
        }
    }

    fn end(&mut self) {
        if self.state != ClientState::Terminated {
            self.set_state(ClientState::Terminated);
            self.timers.clear();
            self.events.push_back(ClientEvent::Terminated);
        }
    }
}
