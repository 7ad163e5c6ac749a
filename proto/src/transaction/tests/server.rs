//! Server transactions: RFC 3261 §17.2.1 (INVITE, with RFC 6026 Accepted)
//! and §17.2.2 (non-INVITE), over UDP and TCP.

use super::{Clock, b, events, run, sent};
use crate::net::Transport::{self, Tcp, Udp};
use crate::transaction::ServerEvent::{AckTimeout, Terminated, TransportError};
use crate::transaction::{Disposition, Kind, ServerState, ServerTransaction, TimerConfig, TxError};

fn start(kind: Kind, transport: Transport) -> ServerTransaction {
    ServerTransaction::new(kind, transport, &TimerConfig::default())
}

// ---- INVITE server transaction (§17.2.1) ----

#[test]
fn invite_proceeding_absorbs_retransmissions_and_resends_latest_provisional() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp);
    assert_eq!(tx.state(), ServerState::Proceeding);
    assert_eq!(tx.poll_timeout(), None);
    tx.on_retransmission();
    assert!(sent(&mut tx).is_empty(), "nothing to resend yet");

    tx.respond(100, b("100"), clock.at(0)).unwrap();
    assert_eq!(sent(&mut tx), ["100"]);
    tx.on_retransmission();
    assert_eq!(sent(&mut tx), ["100"]);

    tx.respond(180, b("180"), clock.at(10)).unwrap();
    assert_eq!(sent(&mut tx), ["180"]);
    tx.on_retransmission();
    assert_eq!(sent(&mut tx), ["180"]);
    assert_eq!(tx.state(), ServerState::Proceeding);
    assert_eq!(
        tx.poll_timeout(),
        None,
        "provisionals are not retransmitted"
    );
    assert!(events(&mut tx).is_empty());
}

#[test]
fn invite_udp_timer_g_caps_at_t2_and_timer_h_reports_ack_timeout() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp);
    tx.respond(100, b("100"), clock.at(0)).unwrap();
    tx.respond(486, b("486"), clock.at(0)).unwrap();
    assert_eq!(tx.state(), ServerState::Completed);
    assert_eq!(sent(&mut tx), ["100", "486"]);
    let trace = run(&mut tx, clock, 100_000);
    assert_eq!(
        trace.sent_at(),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(trace.sent.iter().all(|(_, m)| m == "486"));
    assert_eq!(trace.events, [(32_000, AckTimeout), (32_000, Terminated)]);
    assert!(tx.is_terminated());
}

#[test]
fn invite_completed_resends_final_on_retransmission_and_refuses_more_responses() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp);
    tx.respond(404, b("404"), clock.at(0)).unwrap();
    sent(&mut tx);
    tx.on_retransmission();
    assert_eq!(sent(&mut tx), ["404"]);
    for status in [180, 200, 500] {
        assert_eq!(
            tx.respond(status, b("x"), clock.at(5)),
            Err(TxError::NotAllowed {
                status,
                state: ServerState::Completed
            })
        );
    }
    assert!(sent(&mut tx).is_empty());
}

#[test]
fn invite_ack_confirms_stops_timer_g_and_timer_i_ends_it() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp);
    tx.respond(486, b("486"), clock.at(0)).unwrap();
    sent(&mut tx);
    assert_eq!(run(&mut tx, clock, 2_000).sent_at(), [500, 1500]);
    assert_eq!(tx.on_ack(clock.at(2_000)), Disposition::Absorb);
    assert_eq!(tx.state(), ServerState::Confirmed);
    // Confirmed absorbs ACK and INVITE retransmissions silently.
    assert_eq!(tx.on_ack(clock.at(2_100)), Disposition::Absorb);
    tx.on_retransmission();
    assert!(sent(&mut tx).is_empty());
    let trace = run(&mut tx, clock, 100_000);
    assert!(trace.sent.is_empty(), "Timer G stopped");
    assert_eq!(
        trace.events,
        [(7_000, Terminated)],
        "Timer I = T4, no AckTimeout"
    );
}

#[test]
fn invite_tcp_no_timer_g_timer_h_still_runs_and_ack_terminates_at_once() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Tcp);
    tx.respond(486, b("486"), clock.at(0)).unwrap();
    assert_eq!(sent(&mut tx), ["486"]);
    let trace = run(&mut tx, clock, 100_000);
    assert!(trace.sent.is_empty());
    assert_eq!(trace.events, [(32_000, AckTimeout), (32_000, Terminated)]);

    let mut tx = start(Kind::Invite, Tcp);
    tx.respond(486, b("486"), clock.at(0)).unwrap();
    assert_eq!(tx.on_ack(clock.at(100)), Disposition::Absorb);
    assert!(tx.is_terminated(), "Timer I is zero on TCP");
    assert_eq!(events(&mut tx), [Terminated]);
}

#[test]
fn invite_2xx_enters_accepted_per_rfc_6026() {
    let clock = Clock::new();
    for transport in [Udp, Tcp] {
        let mut tx = start(Kind::Invite, transport);
        tx.respond(180, b("180"), clock.at(0)).unwrap();
        tx.respond(200, b("200"), clock.at(1_000)).unwrap();
        assert_eq!(tx.state(), ServerState::Accepted);
        assert_eq!(sent(&mut tx), ["180", "200"]);
        // Retransmitted INVITEs are absorbed without a resend: the UAS
        // retransmits its 2xx end to end and the TU forwards those.
        tx.on_retransmission();
        assert!(sent(&mut tx).is_empty());
        tx.respond(200, b("200 again"), clock.at(1_500)).unwrap();
        assert_eq!(sent(&mut tx), ["200 again"]);
        // An ACK that matches here goes to the TU.
        assert_eq!(tx.on_ack(clock.at(1_600)), Disposition::PassUp);
        assert_eq!(tx.state(), ServerState::Accepted);
        for status in [183, 486] {
            assert_eq!(
                tx.respond(status, b("x"), clock.at(1_700)),
                Err(TxError::NotAllowed {
                    status,
                    state: ServerState::Accepted
                })
            );
        }
        let trace = run(&mut tx, clock, 100_000);
        assert!(
            trace.sent.is_empty(),
            "the transaction never retransmits a 2xx"
        );
        assert_eq!(
            trace.events,
            [(33_000, Terminated)],
            "Timer L = 64*T1 ({transport})"
        );
    }
}

#[test]
fn invite_transport_error_informs_tu_without_terminating() {
    // RFC 6026 Figure 7: Proceeding, Completed and Accepted loop back.
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp);
    tx.respond(100, b("100"), clock.at(0)).unwrap();
    tx.on_transport_error();
    assert_eq!(tx.state(), ServerState::Proceeding);
    assert_eq!(events(&mut tx), [TransportError]);

    tx.respond(486, b("486"), clock.at(10)).unwrap();
    tx.on_transport_error();
    assert_eq!(tx.state(), ServerState::Completed);
    assert_eq!(events(&mut tx), [TransportError]);

    let mut tx = start(Kind::Invite, Udp);
    tx.respond(200, b("200"), clock.at(0)).unwrap();
    tx.on_transport_error();
    assert_eq!(tx.state(), ServerState::Accepted);
    assert_eq!(events(&mut tx), [TransportError]);
}

#[test]
fn invalid_status_codes_are_refused() {
    let clock = Clock::new();
    let mut tx = start(Kind::Invite, Udp);
    for status in [0, 99, 700] {
        assert_eq!(
            tx.respond(status, b("x"), clock.at(0)),
            Err(TxError::InvalidStatus(status))
        );
    }
    assert_eq!(tx.state(), ServerState::Proceeding);
    assert!(sent(&mut tx).is_empty());
}

// ---- non-INVITE server transaction (§17.2.2) ----

#[test]
fn non_invite_trying_absorbs_retransmissions_silently() {
    let mut tx = start(Kind::NonInvite, Udp);
    assert_eq!(tx.state(), ServerState::Trying);
    tx.on_retransmission();
    assert!(sent(&mut tx).is_empty());
    assert_eq!(tx.state(), ServerState::Trying);
}

#[test]
fn non_invite_provisional_then_final_with_resends_and_timer_j() {
    let clock = Clock::new();
    let mut tx = start(Kind::NonInvite, Udp);
    tx.respond(100, b("100"), clock.at(0)).unwrap();
    assert_eq!(tx.state(), ServerState::Proceeding);
    tx.on_retransmission();
    assert_eq!(sent(&mut tx), ["100", "100"]);
    tx.respond(200, b("200"), clock.at(1_000)).unwrap();
    assert_eq!(tx.state(), ServerState::Completed);
    tx.on_retransmission();
    assert_eq!(sent(&mut tx), ["200", "200"]);
    assert!(matches!(
        tx.respond(500, b("500"), clock.at(1_100)),
        Err(TxError::NotAllowed { .. })
    ));
    let trace = run(&mut tx, clock, 100_000);
    assert!(
        trace.sent.is_empty(),
        "non-INVITE responses are not retransmitted"
    );
    assert_eq!(trace.events, [(33_000, Terminated)], "Timer J = 64*T1");
}

#[test]
fn non_invite_final_from_trying() {
    let clock = Clock::new();
    let mut tx = start(Kind::NonInvite, Udp);
    tx.respond(404, b("404"), clock.at(0)).unwrap();
    assert_eq!(tx.state(), ServerState::Completed);
    assert_eq!(sent(&mut tx), ["404"]);
    // An ACK never belongs to a non-INVITE transaction.
    assert_eq!(tx.on_ack(clock.at(10)), Disposition::Absorb);
    assert_eq!(tx.state(), ServerState::Completed);
}

#[test]
fn non_invite_tcp_final_terminates_at_once() {
    let clock = Clock::new();
    let mut tx = start(Kind::NonInvite, Tcp);
    tx.respond(200, b("200"), clock.at(0)).unwrap();
    assert!(tx.is_terminated(), "Timer J is zero on TCP");
    assert_eq!(sent(&mut tx), ["200"], "the response is still drained");
    assert_eq!(events(&mut tx), [Terminated]);
    assert_eq!(tx.poll_timeout(), None);
    assert!(matches!(
        tx.respond(200, b("200"), clock.at(1)),
        Err(TxError::NotAllowed {
            state: ServerState::Terminated,
            ..
        })
    ));
}

#[test]
fn non_invite_transport_error_terminates() {
    let clock = Clock::new();
    for status in [100, 200] {
        let mut tx = start(Kind::NonInvite, Udp);
        tx.respond(status, b("x"), clock.at(0)).unwrap();
        tx.on_transport_error();
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), [TransportError, Terminated]);
        assert_eq!(tx.poll_timeout(), None);
    }
    // Trying has sent nothing that could fail.
    let mut tx = start(Kind::NonInvite, Udp);
    tx.on_transport_error();
    assert_eq!(tx.state(), ServerState::Trying);
    assert!(events(&mut tx).is_empty());
}
