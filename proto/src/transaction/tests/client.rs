//! Client transactions: RFC 3261 §17.1.1 (INVITE, with RFC 6026 Accepted)
//! and §17.1.2 (non-INVITE), over UDP and TCP.

use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;

use super::{Clock, b, events, run, sent};
use crate::net::Transport::{self, Tcp, Udp};
use crate::transaction::ClientEvent::{Terminated, Timeout, TransportError};
use crate::transaction::{ClientState, ClientTransaction, Disposition, Kind, TimerConfig};

fn start(kind: Kind, transport: Transport, clock: Clock) -> ClientTransaction {
    let request = match kind {
        Kind::Invite => b("INVITE"),
        Kind::NonInvite => b("OPTIONS"),
    };
    let mut tx = ClientTransaction::new(
        kind,
        transport,
        request.clone(),
        &TimerConfig::default(),
        clock.at(0),
    );
    assert_eq!(
        sent(&mut tx),
        [request],
        "the initial send is queued at once"
    );
    tx
}

fn ack(_: &Bytes) -> Bytes {
    b("ACK")
}

fn no_ack(_: &Bytes) -> Bytes {
    panic!("no ACK expected here")
}

// ---- INVITE client transaction (§17.1.1) ----

#[test]
fn invite_udp_timer_a_doubles_without_cap_and_timer_b_fires_at_32s() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    assert_eq!(tx.state(), ClientState::Calling);
    let trace = run(&mut tx, clock, 100_000);
    // A: T1, 2T1, 4T1, ... — beyond T2 (4 s), unlike Timer E.
    assert_eq!(trace.sent_at(), [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(trace.sent.iter().all(|(_, m)| m == "INVITE"));
    assert_eq!(trace.events, [(32_000, Timeout), (32_000, Terminated)]);
    assert!(tx.is_terminated());
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn a_late_wakeup_runs_every_due_timer_in_order() {
    // The caller's timer wheel may wake up late; everything due runs at once.
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    tx.handle_timeout(clock.at(499));
    assert!(sent(&mut tx).is_empty(), "nothing before Timer A");
    tx.handle_timeout(clock.at(40_000));
    assert_eq!(sent(&mut tx), ["INVITE"], "the due retransmission, once");
    assert_eq!(events(&mut tx), [Timeout, Terminated]);
}

#[test]
fn invite_tcp_never_retransmits_and_times_out_at_32s() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Tcp, clock);
    let trace = run(&mut tx, clock, 100_000);
    assert!(trace.sent.is_empty());
    assert_eq!(trace.events, [(32_000, Timeout), (32_000, Terminated)]);
}

#[test]
fn invite_provisional_stops_retransmissions_and_timer_b() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    assert_eq!(run(&mut tx, clock, 600).sent_at(), [500]);
    assert_eq!(
        tx.on_response(100, clock.at(700), no_ack),
        Disposition::PassUp
    );
    assert_eq!(tx.state(), ClientState::Proceeding);
    assert_eq!(
        tx.on_response(180, clock.at(900), no_ack),
        Disposition::PassUp
    );
    // Proceeding has no timer: the proxy's Timer C governs how long it rings.
    assert_eq!(tx.poll_timeout(), None);
    assert_eq!(tx.state(), ClientState::Proceeding);
    assert!(sent(&mut tx).is_empty());
    assert!(events(&mut tx).is_empty());
}

#[test]
fn invite_non_2xx_final_is_acked_once_and_ack_resent_on_retransmission() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    tx.on_response(180, clock.at(100), no_ack);
    let built = Cell::new(0);
    let build = |req: &Bytes| {
        assert_eq!(req, "INVITE", "the ACK is built from the original request");
        built.set(built.get() + 1);
        b("ACK")
    };
    assert_eq!(
        tx.on_response(486, clock.at(1_000), build),
        Disposition::PassUp
    );
    assert_eq!(tx.state(), ClientState::Completed);
    assert_eq!(sent(&mut tx), ["ACK"]);
    // A retransmitted 486: the ACK went missing; resend it, hide the 486.
    assert_eq!(
        tx.on_response(486, clock.at(1_500), no_ack),
        Disposition::Absorb
    );
    assert_eq!(sent(&mut tx), ["ACK"]);
    assert_eq!(built.get(), 1);
    // Anything else in Completed is absorbed too.
    assert_eq!(
        tx.on_response(200, clock.at(1_600), no_ack),
        Disposition::Absorb
    );
    assert_eq!(
        tx.on_response(180, clock.at(1_700), no_ack),
        Disposition::Absorb
    );
    assert!(sent(&mut tx).is_empty());
    // Timer D: 32 s.
    let trace = run(&mut tx, clock, 100_000);
    assert!(trace.sent.is_empty());
    assert_eq!(trace.events, [(33_000, Terminated)]);
}

#[test]
fn invite_non_2xx_final_in_calling_stops_timer_a() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    assert_eq!(tx.on_response(503, clock.at(200), ack), Disposition::PassUp);
    assert_eq!(sent(&mut tx), ["ACK"]);
    let trace = run(&mut tx, clock, 100_000);
    assert!(
        trace.sent.is_empty(),
        "no INVITE retransmission after the final response"
    );
    assert_eq!(trace.events, [(32_200, Terminated)]);
}

#[test]
fn invite_tcp_non_2xx_final_sends_ack_and_terminates_at_once() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Tcp, clock);
    assert_eq!(tx.on_response(404, clock.at(50), ack), Disposition::PassUp);
    // Timer D is zero on reliable transports; the ACK is still drained.
    assert!(tx.is_terminated());
    assert_eq!(sent(&mut tx), ["ACK"]);
    assert_eq!(events(&mut tx), [Terminated]);
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn invite_2xx_enters_accepted_passes_every_2xx_up_and_timer_m_ends_it() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    tx.on_response(180, clock.at(100), no_ack);
    assert_eq!(
        tx.on_response(200, clock.at(2_000), no_ack),
        Disposition::PassUp
    );
    assert_eq!(tx.state(), ClientState::Accepted);
    // RFC 6026 §8.4: retransmitted or forked 2xx go to the TU (which, in a
    // proxy, forwards them); the transaction never ACKs a 2xx itself.
    assert_eq!(
        tx.on_response(200, clock.at(2_500), no_ack),
        Disposition::PassUp
    );
    assert_eq!(
        tx.on_response(183, clock.at(2_600), no_ack),
        Disposition::Absorb
    );
    assert_eq!(
        tx.on_response(486, clock.at(2_700), no_ack),
        Disposition::Absorb
    );
    assert!(sent(&mut tx).is_empty());
    let trace = run(&mut tx, clock, 100_000);
    assert!(trace.sent.is_empty());
    assert_eq!(trace.events, [(34_000, Terminated)], "Timer M = 64*T1");
}

#[test]
fn invite_2xx_in_calling_stops_timer_a_and_b() {
    for transport in [Udp, Tcp] {
        let clock = Clock::new();
        let mut tx = start(Kind::Invite, transport, clock);
        assert_eq!(
            tx.on_response(200, clock.at(300), no_ack),
            Disposition::PassUp
        );
        assert_eq!(tx.state(), ClientState::Accepted);
        let trace = run(&mut tx, clock, 100_000);
        assert!(trace.sent.is_empty());
        // Timer M runs on TCP too: the TU still needs forked 2xx.
        assert_eq!(trace.events, [(32_300, Terminated)], "{transport}");
    }
}

#[test]
fn invite_transport_error_terminates_in_calling_and_completed_only() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    tx.on_transport_error();
    assert!(tx.is_terminated());
    assert_eq!(events(&mut tx), [TransportError, Terminated]);
    assert_eq!(tx.poll_timeout(), None);

    let mut tx = start(Kind::Invite, Udp, clock);
    tx.on_response(486, clock.at(10), ack);
    tx.on_transport_error(); // the ACK could not be sent
    assert_eq!(events(&mut tx), [TransportError, Terminated]);

    // Nothing is sent in Proceeding or Accepted: no state change.
    let mut tx = start(Kind::Invite, Udp, clock);
    tx.on_response(180, clock.at(10), no_ack);
    tx.on_transport_error();
    assert_eq!(tx.state(), ClientState::Proceeding);
    tx.on_response(200, clock.at(20), no_ack);
    tx.on_transport_error();
    assert_eq!(tx.state(), ClientState::Accepted);
    assert!(events(&mut tx).is_empty());
}

#[test]
fn responses_after_termination_and_invalid_codes_are_absorbed() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    assert_eq!(
        tx.on_response(99, clock.at(10), no_ack),
        Disposition::Absorb
    );
    assert_eq!(
        tx.on_response(700, clock.at(10), no_ack),
        Disposition::Absorb
    );
    assert_eq!(tx.state(), ClientState::Calling);
    run(&mut tx, clock, 100_000);
    assert_eq!(
        tx.on_response(200, clock.at(40_000), no_ack),
        Disposition::Absorb
    );
    assert!(events(&mut tx).is_empty(), "Terminated is reported once");
}

#[test]
fn the_tu_can_abandon_a_proceeding_invite() {
    // Timer C (§16.8): the downstream rings forever.
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp, clock);
    tx.on_response(180, clock.at(100), no_ack);
    tx.terminate();
    assert!(tx.is_terminated());
    assert_eq!(events(&mut tx), [Terminated]);
    assert_eq!(
        tx.on_response(486, clock.at(200), no_ack),
        Disposition::Absorb
    );
    assert!(sent(&mut tx).is_empty(), "no ACK once terminated");
    tx.terminate();
    assert!(events(&mut tx).is_empty(), "Terminated is reported once");
}

// ---- non-INVITE client transaction (§17.1.2) ----

#[test]
fn non_invite_udp_timer_e_caps_at_t2_and_timer_f_fires_at_32s() {
    let clock = Clock::new();
    let mut tx = start(Kind::NonInvite, Udp, clock);
    assert_eq!(tx.state(), ClientState::Trying);
    let trace = run(&mut tx, clock, 100_000);
    assert_eq!(
        trace.sent_at(),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(trace.events, [(32_000, Timeout), (32_000, Terminated)]);
}

#[test]
fn non_invite_proceeding_retransmits_every_t2() {
    let clock = Clock::new();
    let mut tx = start(Kind::NonInvite, Udp, clock);
    assert_eq!(run(&mut tx, clock, 600).sent_at(), [500]);
    assert_eq!(
        tx.on_response(100, clock.at(700), no_ack),
        Disposition::PassUp
    );
    assert_eq!(tx.state(), ClientState::Proceeding);
    // E, already armed for 1.5 s, fires; from then on it is T2.
    let trace = run(&mut tx, clock, 100_000);
    assert_eq!(
        trace.sent_at(),
        [1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]
    );
    assert_eq!(trace.events, [(32_000, Timeout), (32_000, Terminated)]);
}

#[test]
fn non_invite_final_completes_absorbs_retransmissions_and_timer_k_ends_it() {
    for (provisional, status) in [(false, 200), (true, 200), (false, 404), (true, 603)] {
        let clock = Clock::new();
        let mut tx = start(Kind::NonInvite, Udp, clock);
        if provisional {
            tx.on_response(100, clock.at(100), no_ack);
        }
        assert_eq!(
            tx.on_response(status, clock.at(1_000), no_ack),
            Disposition::PassUp
        );
        assert_eq!(tx.state(), ClientState::Completed);
        assert_eq!(
            tx.on_response(status, clock.at(1_200), no_ack),
            Disposition::Absorb
        );
        assert_eq!(
            tx.on_response(100, clock.at(1_300), no_ack),
            Disposition::Absorb
        );
        let trace = run(&mut tx, clock, 100_000);
        assert!(
            trace.sent.is_empty(),
            "no retransmission after the final response"
        );
        assert_eq!(trace.events, [(6_000, Terminated)], "Timer K = T4");
    }
}

#[test]
fn non_invite_tcp_no_retransmissions_and_final_terminates_at_once() {
    let clock = Clock::new();
    let mut tx = start(Kind::NonInvite, Tcp, clock);
    let trace = run(&mut tx, clock, 100_000);
    assert!(trace.sent.is_empty());
    assert_eq!(trace.events, [(32_000, Timeout), (32_000, Terminated)]);

    let mut tx = start(Kind::NonInvite, Tcp, clock);
    tx.on_response(100, clock.at(10), no_ack);
    assert_eq!(
        tx.on_response(200, clock.at(20), no_ack),
        Disposition::PassUp
    );
    assert!(tx.is_terminated(), "Timer K is zero on TCP");
    assert_eq!(events(&mut tx), [Terminated]);
}

#[test]
fn non_invite_transport_error_terminates_in_trying_and_proceeding() {
    let clock = Clock::new();
    for provisional in [false, true] {
        let mut tx = start(Kind::NonInvite, Udp, clock);
        if provisional {
            tx.on_response(100, clock.at(10), no_ack);
        }
        tx.on_transport_error();
        assert_eq!(events(&mut tx), [TransportError, Terminated]);
        assert_eq!(tx.poll_timeout(), None);
    }
    let mut tx = start(Kind::NonInvite, Udp, clock);
    tx.on_response(200, clock.at(10), no_ack);
    tx.on_transport_error();
    assert_eq!(tx.state(), ClientState::Completed);
}

#[test]
fn timers_follow_a_configured_t1_and_t2() {
    let clock = Clock::new();
    let config = TimerConfig {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        t4: Duration::from_secs(1),
    };
    let mut tx = ClientTransaction::new(Kind::NonInvite, Udp, b("OPTIONS"), &config, clock.at(0));
    sent(&mut tx);
    let trace = run(&mut tx, clock, 100_000);
    assert_eq!(&trace.sent_at()[..5], [100, 300, 700, 1100, 1500]);
    assert_eq!(trace.events.last(), Some(&(6_400, Terminated)), "F = 64*T1");
}
