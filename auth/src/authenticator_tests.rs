//! The three steps driven by hand, as `node/auth.rs` drives them, with the
//! time and the ledger's answers chosen by the test.

use std::sync::Arc;

use switchyard_codec::SipMessage;

use super::*;
use crate::digest::Qop;
use crate::{LocalLedger, Subscribers};

const REALM: &str = "sip.test";
const NOW: u64 = 1_700_000_000;
const URI: &str = "sip:sip.test";

fn client() -> IpAddr {
    IpAddr::from([192, 0, 2, 7])
}

fn authenticator() -> (Authenticator, Subscriber) {
    let alice = Subscriber::new(REALM, "alice", "pw");
    let subscribers = Subscribers::empty();
    subscribers.replace(vec![alice.clone()]);
    let auth = Authenticator::new(
        AuthConfig::default(),
        b"a test secret of enough length",
        Arc::new(subscribers),
        Arc::new(LocalLedger::new(16)),
    )
    .unwrap();
    (auth, alice)
}

/// A REGISTER answering `nonce` with `nc` and alice's password.
fn register(nonce: &str, nc: u32) -> SipMessage {
    let ha1 = digest::ha1(Algorithm::Md5, "alice", REALM, "pw");
    let nc = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let response = digest::response(
        Algorithm::Md5,
        &ha1,
        nonce,
        Some((Qop::Auth, &nc, cnonce)),
        "REGISTER",
        URI,
        b"",
    );
    let text = format!(
        "REGISTER {URI} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@sip.test>;tag=1\r\n\
         To: <sip:alice@sip.test>\r\n\
         Call-ID: c1\r\n\
         CSeq: 1 REGISTER\r\n\
         Authorization: Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", \
         uri=\"{URI}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, \
         cnonce=\"{cnonce}\"\r\n\
         Content-Length: 0\r\n\r\n"
    );
    SipMessage::parse(text.into_bytes().into()).unwrap()
}

/// Steps one and two at `now`, with alice as the store's answer.
fn conclude(auth: &Authenticator, alice: &Subscriber, msg: &SipMessage, now: u64) -> Concluded {
    match auth.check(msg, Role::Registrar, REALM, client(), now) {
        Check::Done(verdict) => Concluded::Done(verdict),
        Check::Lookup(pending) => {
            assert_eq!((pending.realm(), pending.user()), (REALM, "alice"));
            auth.conclude(pending, Some(alice), msg)
        }
    }
}

fn nonce(auth: &Authenticator, issued: u64) -> String {
    let challenge = auth.challenge(Role::Registrar, REALM, client(), issued, false, 42);
    let value = &challenge.headers[0].1;
    let start = value.find("nonce=\"").unwrap() + 7;
    value[start..start + value[start..].find('"').unwrap()].to_string()
}

#[test]
fn a_right_answer_asks_for_its_count_to_be_claimed_for_the_nonce_s_remaining_life() {
    let (auth, alice) = authenticator();
    let nonce = nonce(&auth, NOW);
    let msg = register(&nonce, 3);
    let Concluded::Claim(claim) = conclude(&auth, &alice, &msg, NOW + 100) else {
        panic!("expected a claim");
    };
    assert_eq!((claim.nonce(), claim.nc()), (nonce.as_str(), 3));
    // 300 s lifetime, 100 s gone, plus the clock skew another node may have.
    assert_eq!(claim.ttl_secs(), 200 + MAX_CLOCK_SKEW_SECS);
    assert_eq!(
        claim.clone().settle(true),
        Verdict::Authenticated {
            user: "alice".into()
        }
    );
    assert_eq!(claim.settle(false), Verdict::Challenge { stale: true });
}

#[test]
fn wrong_stale_and_countless_answers_claim_nothing() {
    let (auth, alice) = authenticator();
    let nonce = nonce(&auth, NOW);
    let stranger = Subscriber::new(REALM, "alice", "other");
    let msg = register(&nonce, 1);
    assert!(matches!(
        conclude(&auth, &stranger, &msg, NOW),
        Concluded::Done(Verdict::Challenge { stale: false })
    ));
    assert!(matches!(
        conclude(&auth, &alice, &msg, NOW + 301),
        Concluded::Done(Verdict::Challenge { stale: true })
    ));
    assert!(matches!(
        conclude(&auth, &alice, &register(&nonce, 0), NOW),
        Concluded::Done(Verdict::Challenge { stale: false })
    ));
}

#[tokio::test]
async fn the_ledger_refuses_the_same_answer_twice() {
    let (auth, alice) = authenticator();
    let nonce = nonce(&auth, NOW);
    let msg = register(&nonce, 1);
    let mut verdicts = Vec::new();
    for _ in 0..2 {
        let Concluded::Claim(claim) = conclude(&auth, &alice, &msg, NOW) else {
            panic!("expected a claim");
        };
        let fresh = auth
            .ledger()
            .claim(claim.nonce(), claim.nc(), claim.ttl_secs())
            .await
            .unwrap();
        verdicts.push(claim.settle(fresh));
    }
    assert_eq!(
        verdicts,
        [
            Verdict::Authenticated {
                user: "alice".into()
            },
            Verdict::Challenge { stale: true }
        ]
    );
}
