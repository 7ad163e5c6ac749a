use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use switchyard_codec::{Contacts, HeaderName};

use super::test_support::{register, source};
use super::*;
use crate::location::{Aor, Binding, EmbeddedStore, StoreError};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// Sends one REGISTER through [`handle`] and parses the answer.
async fn send(store: &dyn LocationStore, cseq: u32, extra: &[&str], now: SystemTime) -> SipMessage {
    let msg = register(cseq, extra);
    let config = RegistrarConfig::default();
    let bytes = handle(store, &msg, &config, source(), Some("node-1"), now).await;
    SipMessage::parse(bytes).expect("response parses")
}

fn listed(response: &SipMessage) -> Vec<(String, Option<u32>)> {
    match response.contacts().expect("contacts parse") {
        Contacts::List(list) => list
            .iter()
            .map(|c| (c.uri.raw.to_owned(), c.expires()))
            .collect(),
        Contacts::Star => panic!("* in a response"),
    }
}

#[tokio::test]
async fn register_refresh_query_and_unregister() {
    let store = EmbeddedStore::new();
    let a = "Contact: <sip:alice@127.0.0.2:40000>;expires=600";
    let response = send(&store, 1, &[a], t(0)).await;
    assert_eq!(response.status(), Some(200));
    assert_eq!(
        listed(&response),
        [("sip:alice@127.0.0.2:40000".into(), Some(600))]
    );

    // A second device: the 200 OK lists every current binding.
    let b = "Contact: <sip:alice@127.0.0.3:5060>";
    let response = send(&store, 2, &[b, "Expires: 120"], t(100)).await;
    assert_eq!(
        listed(&response),
        [
            ("sip:alice@127.0.0.2:40000".into(), Some(500)),
            ("sip:alice@127.0.0.3:5060".into(), Some(120))
        ]
    );

    // A query changes nothing and reports the same set.
    let response = send(&store, 3, &[], t(110)).await;
    assert_eq!(listed(&response).len(), 2);

    let response = send(
        &store,
        4,
        &["Contact: <sip:alice@127.0.0.2:40000>;expires=0"],
        t(120),
    )
    .await;
    assert_eq!(
        listed(&response),
        [("sip:alice@127.0.0.3:5060".into(), Some(100))]
    );

    let response = send(&store, 5, &["Contact: *", "Expires: 0"], t(130)).await;
    assert_eq!(response.status(), Some(200));
    assert!(listed(&response).is_empty());
    let aor = Aor::parse("alice@sip.test").unwrap();
    assert!(store.lookup(&aor, t(130)).await.unwrap().is_empty());
}

#[tokio::test]
async fn stored_binding_carries_request_details() {
    let store = EmbeddedStore::new();
    let extra = [
        "Contact: <sip:alice@127.0.0.2:40000>;q=0.2",
        "Supported: path",
        "Path: <sip:edge.test;lr>",
        "User-Agent: Phone/2",
    ];
    let response = send(&store, 1, &extra, t(0)).await;
    assert_eq!(
        response.header(HeaderName::Path),
        Some("<sip:edge.test;lr>")
    );
    let aor = Aor::parse("alice@sip.test").unwrap();
    let [binding] = <[Binding; 1]>::try_from(store.lookup(&aor, t(0)).await.unwrap()).unwrap();
    assert_eq!(binding.path, ["<sip:edge.test;lr>"]);
    assert_eq!(binding.q, Some(200));
    assert_eq!(binding.user_agent.as_deref(), Some("Phone/2"));
    assert_eq!(binding.node.as_deref(), Some("node-1"));
    assert_eq!(binding.source, source());
    assert_eq!(
        (binding.call_id.as_str(), binding.cseq),
        ("reg-call-1@127.0.0.2", 1)
    );
}

#[tokio::test]
async fn out_of_order_cseq_is_500_and_changes_nothing() {
    let store = EmbeddedStore::new();
    send(&store, 5, &["Contact: <sip:alice@127.0.0.2>"], t(0)).await;
    let response = send(
        &store,
        4,
        &["Contact: <sip:alice@127.0.0.2>;expires=0"],
        t(1),
    )
    .await;
    assert_eq!(response.status(), Some(500));
    let aor = Aor::parse("alice@sip.test").unwrap();
    assert_eq!(store.lookup(&aor, t(1)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn rejections_never_reach_the_store() {
    let store = EmbeddedStore::new();
    let response = send(
        &store,
        1,
        &["Contact: <sip:alice@127.0.0.2>;expires=10"],
        t(0),
    )
    .await;
    assert_eq!(response.status(), Some(423));
    assert_eq!(response.header(HeaderName::MinExpires), Some("60"));
    let response = send(&store, 2, &["Contact: *"], t(0)).await;
    assert_eq!(response.status(), Some(400));
    assert_eq!(store.binding_count(), 0);
}

/// A backend that is down: every call fails like an unreachable cluster.
struct DownStore;

#[async_trait]
impl LocationStore for DownStore {
    async fn register(
        &self,
        _: &Aor,
        _: &RegisterUpdate,
        _: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        Err(StoreError::Unavailable("connection refused".into()).into())
    }
    async fn lookup(&self, _: &Aor, _: SystemTime) -> Result<Vec<Binding>, StoreError> {
        Err(StoreError::Timeout(Duration::from_millis(500)))
    }
    async fn purge_expired(&self, _: SystemTime) -> Result<usize, StoreError> {
        Ok(0)
    }
    fn backend(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn store_failures_become_503_with_retry_after() {
    let response = send(&DownStore, 1, &["Contact: <sip:alice@127.0.0.2>"], t(0)).await;
    assert_eq!(response.status(), Some(503));
    assert_eq!(response.header(HeaderName::RetryAfter), Some("30"));
    // A query uses lookup, which times out here.
    let response = send(&DownStore, 2, &[], t(0)).await;
    assert_eq!(response.status(), Some(503));
    assert_eq!(response.header(HeaderName::RetryAfter), Some("5"));
}

#[test]
fn config_validation_refuses_unworkable_intervals() {
    assert!(RegistrarConfig::default().validate().is_ok());
    let bad = RegistrarConfig {
        min_expires: 600,
        default_expires: 300,
        max_expires: 7200,
        ..RegistrarConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = RegistrarConfig {
        min_expires: 0,
        ..RegistrarConfig::default()
    };
    assert!(bad.validate().is_err());
}
