//! Failure paths over real sockets (no server needed), and the conformance
//! suite against a real cluster when `SWITCHYARD_CASSANDRA` is set.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::*;
use crate::breaker::{BreakerConfig, BreakerState};
use switchyard_location::conformance::{contact, update};

fn config_for(port: u16, timeout_ms: u64) -> CassandraConfig {
    CassandraConfig {
        contact_points: vec![format!("127.0.0.1:{port}")],
        local_dc: Some("DC1".into()),
        request_timeout_ms: timeout_ms,
        connect_timeout_ms: timeout_ms,
        breaker: BreakerConfig {
            failure_threshold: 3,
            cool_down_ms: 60_000,
        },
        ..CassandraConfig::default()
    }
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A listener that accepts every connection and never answers (the sockets
/// are kept open so the driver sees no error, only silence).
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

fn aor() -> Aor {
    Aor::parse("alice@sip.test").unwrap()
}

#[test]
fn lazy_construction_does_no_io_and_validates() {
    let store = CassandraStore::lazy(config_for(closed_port(), 100)).expect("valid config");
    assert_eq!(store.backend(), "cassandra");
    assert!(store.expires_natively());
    assert_eq!(store.round_trips(), 0);
    let mut bad = config_for(1, 100);
    bad.contact_points.clear();
    assert!(CassandraStore::lazy(bad).is_err());
}

#[tokio::test]
async fn closed_port_fails_fast_with_unavailable() {
    let config = config_for(closed_port(), 2000);
    let started = Instant::now();
    let error = match CassandraStore::connect(config.clone()).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(error) => error,
    };
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let store = CassandraStore::lazy(config).unwrap();
    let started = Instant::now();
    let lookup = store.lookup(&aor(), SystemTime::now()).await;
    assert!(
        matches!(lookup, Err(StoreError::Unavailable(_))),
        "{lookup:?}"
    );
    let register = store
        .register(
            &aor(),
            &update("c", 1, vec![contact("sip:a@h", 60)]),
            SystemTime::now(),
        )
        .await;
    assert!(
        matches!(
            register,
            Err(RegisterError::Store(StoreError::Unavailable(_)))
        ),
        "{register:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store.round_trips(), 0, "nothing was sent");
}

#[tokio::test]
async fn breaker_opens_after_consecutive_failures_and_fails_fast() {
    let store = CassandraStore::lazy(config_for(closed_port(), 2000)).unwrap();
    for _ in 0..3 {
        assert!(store.lookup(&aor(), SystemTime::now()).await.is_err());
    }
    assert!(matches!(
        store.breaker.lock().state(),
        BreakerState::Open { .. }
    ));
    let started = Instant::now();
    let error = store.lookup(&aor(), SystemTime::now()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(
        error.to_string().contains("circuit breaker open"),
        "{error}"
    );
    assert_eq!(error.retry_after_secs(), 30);
    let metrics = store.metrics();
    assert_eq!((metrics.unavailable, metrics.breaker_rejected), (4, 1));
    assert_eq!(
        metrics.latency.iter().sum::<u64>(),
        3,
        "one sample per call sent"
    );
}

#[tokio::test]
async fn silent_server_times_out_within_budget() {
    let (port, server) = silent_listener().await;
    let timeout = Duration::from_millis(400);
    let budget = timeout + timeout / 10;
    let started = Instant::now();
    let connect = CassandraStore::connect(config_for(port, 400)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(connect, Err(StoreError::Timeout(t)) if t == timeout),
        "{:?}",
        connect.err()
    );
    assert!(elapsed >= timeout && elapsed <= budget, "{elapsed:?}");

    // The lazy store: many concurrent calls, each answered within the budget.
    // The connect attempt may take far longer than a call may wait.
    let slow_connect = CassandraConfig {
        connect_timeout_ms: 30_000,
        ..config_for(port, 400)
    };
    let store = Arc::new(CassandraStore::lazy(slow_connect).unwrap());
    let mut calls = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let failed_with_timeout = if i % 2 == 0 {
                matches!(
                    store.lookup(&aor(), SystemTime::now()).await,
                    Err(StoreError::Timeout(_))
                )
            } else {
                let update = update("c", i, vec![contact("sip:a@h", 60)]);
                matches!(
                    store.register(&aor(), &update, SystemTime::now()).await,
                    Err(RegisterError::Store(StoreError::Timeout(_)))
                )
            };
            (failed_with_timeout, started.elapsed())
        }));
    }
    for call in calls {
        let (timed_out, elapsed) = call.await.unwrap();
        assert!(timed_out);
        assert!(elapsed <= budget, "{elapsed:?} > {budget:?}");
    }
    let metrics = store.metrics();
    assert_eq!(
        metrics.timeout + metrics.breaker_rejected,
        20,
        "{metrics:?}"
    );
    // One attempt was started and is still running in the background.
    let attempt = store.connecting.lock().await;
    assert!(attempt.as_ref().is_some_and(|a| !a.is_finished()));
    drop(attempt);
    server.abort();
}

/// The conformance suite against a real cluster, in a keyspace fresh for
/// this run. Skipped (ignored, with the reason) unless asked for:
///
/// ```text
/// SWITCHYARD_CASSANDRA=10.0.0.1:9042 SWITCHYARD_CASSANDRA_DC=DC1 \
///     cargo test -p switchyard cassandra -- --ignored
/// ```
mod cluster {
    use std::sync::OnceLock;

    use super::*;

    /// One keyspace per test process, created by the first case.
    fn keyspace() -> &'static str {
        static KEYSPACE: OnceLock<String> = OnceLock::new();
        KEYSPACE.get_or_init(|| format!("switchyard_test_{:012x}", rand::random::<u64>() >> 16))
    }

    pub(super) async fn cluster_store() -> CassandraStore {
        static SCHEMA: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);
        let points = std::env::var("SWITCHYARD_CASSANDRA")
            .expect("SWITCHYARD_CASSANDRA=host:port[,host:port] must be set for these tests");
        let dc = std::env::var("SWITCHYARD_CASSANDRA_DC").unwrap_or_else(|_| "datacenter1".into());
        let mut created = SCHEMA.lock().await;
        let config = CassandraConfig {
            contact_points: points.split(',').map(|p| p.trim().to_owned()).collect(),
            local_dc: Some(dc.clone()),
            keyspace: keyspace().to_owned(),
            replication: [(dc, 1)].into_iter().collect(),
            request_timeout_ms: 10_000,
            connect_timeout_ms: 60_000,
            max_commit_attempts: 64,
            create_schema: !*created,
            ..CassandraConfig::default()
        };
        let store = CassandraStore::connect(config)
            .await
            .expect("connect to the cluster");
        *created = true;
        store
    }

    switchyard_location::location_store_conformance!(
        attrs [#[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]]
        async { cluster_store().await }
    );

    /// The shared counters (`shared_counters` table) conform too.
    mod counters {
        use super::cluster_store;

        switchyard_location::shared_counters_conformance!(
            attrs [#[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]]
            async { cluster_store().await }
        );
    }

    /// Two nodes, each with its own session and read cache: an AOR
    /// registered through one is seen by the other's `cached` after a
    /// prefetch round (what a policy's `location.lookup` reads).
    #[tokio::test]
    #[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]
    async fn the_read_cache_sees_other_nodes_registrations() {
        use switchyard_location::{AorFilter, ReadCache, ReadCacheConfig};
        let node = |store: CassandraStore| {
            Arc::new(ReadCache::new(Arc::new(store), ReadCacheConfig::default()))
        };
        let (a, b) = (node(cluster_store().await), node(cluster_store().await));
        let aor = switchyard_location::conformance::unique_aor("cache");
        let now = switchyard_location::conformance::base_time();
        b.register(&aor, &update("c", 1, vec![contact("sip:a@h", 60)]), now)
            .await
            .unwrap();
        assert_eq!(a.cached(&aor, now), None);
        let filter = AorFilter {
            domains: vec![aor.domain().to_owned()],
            user: aor.user().map(str::to_owned),
            ..AorFilter::default()
        };
        assert_eq!(a.prefetch(&[filter], now).await, 1);
        assert_eq!(a.cached(&aor, now).map(|b| b.len()), Some(1));
    }

    /// A CDR written is read back from its tenant's day partition.
    #[tokio::test]
    #[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]
    async fn a_cdr_is_stored_in_its_tenants_day() {
        let store = cluster_store().await;
        let tenant = format!("t{:08x}", rand::random::<u32>());
        let cdr = switchyard_proto::dialog::CallRecord {
            id: "n1-1".into(),
            tenant: tenant.clone(),
            call_id: "c1".into(),
            caller: "a@acme.test".into(),
            callee: "b@acme.test".into(),
            start_ms: 1_796_601_000_000,
            answer_ms: Some(1_796_601_001_000),
            end_ms: Some(1_796_601_061_000),
            duration_ms: 60_000,
            status: 200,
            end_reason: Some(switchyard_proto::dialog::EndReason::CalleeBye),
            session_expires: None,
        };
        store.insert_cdr(&cdr, 1).await.unwrap();
        let rows = store.cdrs_of_day(&tenant, "2026-12-07", 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].call_id.as_str(), rows[0].duration_ms),
            ("c1", 60_000)
        );
        assert_eq!(rows[0].end_reason.as_deref(), Some("callee-bye"));
    }

    #[tokio::test]
    #[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]
    async fn subscribers_conform_on_a_real_cluster() {
        let store = cluster_store().await;
        let realm = format!("r{:08x}.test", rand::random::<u32>());
        switchyard_auth::conformance(&store, &realm).await;
    }

    #[tokio::test]
    #[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]
    async fn the_nonce_ledger_conforms_on_a_real_cluster() {
        let store = cluster_store().await;
        let prefix = format!("n{:016x}", rand::random::<u64>());
        switchyard_auth::ledger_conformance(&store, &prefix).await;
    }

    #[tokio::test]
    #[ignore = "needs a Cassandra cluster: set SWITCHYARD_CASSANDRA=host:port"]
    async fn round_trips_on_a_real_cluster() {
        let store = cluster_store().await;
        let aor = switchyard_location::conformance::unique_aor("round-trips");
        let now = switchyard_location::conformance::base_time();
        store
            .register(&aor, &update("c", 1, vec![contact("sip:a@h", 60)]), now)
            .await
            .unwrap();
        assert_eq!(
            store.round_trips(),
            2,
            "REGISTER = read + conditional batch"
        );
        assert_eq!(store.lookup(&aor, now).await.unwrap().len(), 1);
        assert_eq!(store.round_trips(), 3, "lookup = one read");
    }
}
