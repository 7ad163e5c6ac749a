//! [`CassandraStore`]: the [`LocationStore`] over the `scylla` driver.
//!
//! **Connecting.** Two constructors:
//! - [`CassandraStore::lazy`] (what the proxy uses): no I/O, never fails
//!   on an unreachable cluster. The first call connects (single-flight) and
//!   prepares the statements; until that succeeds every call fails within
//!   the request timeout with `Unavailable`/`Timeout`, so the proxy starts,
//!   answers 503 + Retry-After instead of hanging, and recovers by itself
//!   when the cluster comes back. The circuit breaker spaces out attempts.
//! - [`CassandraStore::connect`]: connects eagerly (bounded by
//!   `connect_timeout_ms`) and returns the error — for `switchyard cassandra schema
//!   --apply`, tests, and operators who prefer to fail at start.
//!
//! **Bounds.** Every store call (a lookup, or a REGISTER's read + commit +
//! retries, including waiting for a lazy connect) runs under one deadline
//! of `request_timeout_ms`; the driver's per-request timeout is the same
//! value. The connection attempt itself runs as a task bounded by
//! `connect_timeout_ms`, so a slow first connect (metadata, schema
//! creation) is not restarted by every call that gives up on it.
//! Past it: [`StoreError::Timeout`]. Consecutive failures open the
//! [`Breaker`]; while open, calls fail at once with `Unavailable`.
//! [`CassandraStore::metrics`] reports a latency histogram and outcome
//! counters per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::speculative_execution::SimpleSpeculativeExecutionPolicy;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use crate::breaker::Breaker;
use crate::config::{CassandraConfig, CassandraConfigError};
use crate::metrics::{MetricsSnapshot, Outcome, StoreMetrics};
use crate::ordering::{self, Commit, Partitions};
use crate::rows::{self, AorRows};
use crate::schema::{self, Statements};
use switchyard_location::{Aor, AorFilter, Binding, LocationStore, RegisterError, StoreError};
use switchyard_proto::registrar::{RegisterOutcome, RegisterUpdate};

/// The Cassandra / ScyllaDB location backend. See the module docs.
pub struct CassandraStore {
    config: CassandraConfig,
    statements: Statements,
    /// Set once connected; the fast path reads it without awaiting.
    live: Arc<parking_lot::RwLock<Option<Arc<Connected>>>>,
    /// The connection attempt in flight (single-flight). It runs as its own
    /// task, so a caller giving up at its deadline does not abort it.
    connecting: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Result<(), StoreError>>>>,
    breaker: parking_lot::Mutex<Breaker>,
    round_trips: AtomicU64,
    metrics: StoreMetrics,
}

/// A session with its statements prepared.
pub(super) struct Connected {
    pub(super) session: Session,
    pub(super) subscribers: super::subscribers::Prepared,
    pub(super) nonces: super::nonces::Prepared,
    pub(super) counters: super::counters::Prepared,
    pub(super) cdrs: super::cdrs::Prepared,
    select: PreparedStatement,
    insert: PreparedStatement,
    delete: PreparedStatement,
    bump_version: PreparedStatement,
    init_version: PreparedStatement,
    aors: PreparedStatement,
}

impl CassandraStore {
    /// A store that connects on first use (see the module docs). Fails only
    /// on an invalid config.
    pub fn lazy(config: CassandraConfig) -> Result<CassandraStore, CassandraConfigError> {
        config.validate()?;
        Ok(CassandraStore {
            statements: Statements::new(&config.keyspace),
            breaker: parking_lot::Mutex::new(Breaker::new(&config.breaker)),
            config,
            live: Arc::new(parking_lot::RwLock::new(None)),
            connecting: tokio::sync::Mutex::new(None),
            round_trips: AtomicU64::new(0),
            metrics: StoreMetrics::default(),
        })
    }

    /// Connects now (and creates the schema if configured), within
    /// `connect_timeout_ms`.
    pub async fn connect(config: CassandraConfig) -> Result<CassandraStore, StoreError> {
        let store =
            CassandraStore::lazy(config).map_err(|error| StoreError::Backend(error.to_string()))?;
        let budget = store.config.connect_timeout();
        match tokio::time::timeout(budget, store.connection()).await {
            Ok(connected) => connected.map(drop)?,
            Err(_) => return Err(StoreError::Timeout(budget)),
        }
        Ok(store)
    }

    /// Requests sent to the cluster by store calls so far (reads, commits,
    /// lookups; not connection set-up or schema statements).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    pub(super) fn count_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// Latency histogram and outcome counters of the store calls so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The circuit breaker's current state.
    pub fn breaker_state(&self) -> crate::breaker::BreakerState {
        self.breaker.lock().state()
    }

    pub fn config(&self) -> &CassandraConfig {
        &self.config
    }

    /// Runs `call` under the breaker and the request deadline.
    pub(super) async fn guarded<T, E, F, Fut>(&self, call: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<StoreError> + Classify,
    {
        if let Err(rejected) = self.breaker.lock().admit(Instant::now()) {
            self.metrics.breaker_rejection();
            return Err(StoreError::Unavailable(format!(
                "circuit breaker open, next probe in {:?}",
                rejected.retry_in
            ))
            .into());
        }
        let timeout = self.config.request_timeout();
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, call()).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(timeout).into()),
        };
        let outcome = result.as_ref().err().map_or(Outcome::Ok, Classify::outcome);
        let finished = Instant::now();
        self.metrics.observe(outcome, finished - started);
        self.breaker.lock().record(!outcome.is_failure(), finished);
        result
    }

    /// The live connection, connecting first if needed: joins the attempt
    /// in flight or starts one (bounded by `connect_timeout_ms`).
    pub(super) async fn connection(&self) -> Result<Arc<Connected>, StoreError> {
        if let Some(live) = self.live.read().clone() {
            return Ok(live);
        }
        let mut slot = self.connecting.lock().await;
        if let Some(live) = self.live.read().clone() {
            return Ok(live);
        }
        let attempt = match slot.as_mut() {
            Some(attempt) => attempt,
            None => slot.insert(self.spawn_connect()),
        };
        // Cancel-safe: if this caller's deadline passes here, the attempt
        // stays in the slot for the next caller.
        let result = attempt.await;
        *slot = None;
        match result {
            Ok(Ok(())) => self
                .live
                .read()
                .clone()
                .ok_or_else(|| StoreError::Backend("connection vanished".into())),
            Ok(Err(error)) => Err(error),
            Err(join) => Err(StoreError::Backend(format!("connect task: {join}"))),
        }
    }

    fn spawn_connect(&self) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let config = self.config.clone();
        let statements = self.statements.clone();
        let live = self.live.clone();
        tokio::spawn(async move {
            let budget = config.connect_timeout();
            let connected = tokio::time::timeout(budget, Connected::open(&config, &statements))
                .await
                .map_err(|_| StoreError::Timeout(budget))??;
            *live.write() = Some(Arc::new(connected));
            tracing::info!(keyspace = %config.keyspace, "connected to Cassandra");
            Ok(())
        })
    }
}

/// Classifies a call's error for the breaker and the metrics.
pub(super) trait Classify {
    fn outcome(&self) -> Outcome;
}

impl Classify for StoreError {
    fn outcome(&self) -> Outcome {
        Outcome::of_store(self)
    }
}

impl Classify for RegisterError {
    fn outcome(&self) -> Outcome {
        Outcome::of_register(self)
    }
}

impl Connected {
    async fn open(
        config: &CassandraConfig,
        statements: &Statements,
    ) -> Result<Connected, StoreError> {
        let timeout = config.request_timeout();
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &config.local_dc {
            policy = policy
                .prefer_datacenter(dc.clone())
                .permit_dc_failover(false);
        }
        let profile = ExecutionProfile::builder()
            .load_balancing_policy(policy.build())
            .request_timeout(Some(timeout))
            .consistency(config.read_consistency.to_driver())
            .serial_consistency(Some(config.serial_consistency.to_driver()))
            .build();
        // Reads are idempotent: if the first replica has not answered by a
        // quarter of the budget, ask a second one too.
        let read_profile = profile
            .to_builder()
            .speculative_execution_policy(Some(Arc::new(SimpleSpeculativeExecutionPolicy {
                max_retry_count: 1,
                retry_interval: timeout / 4,
            })))
            .build()
            .into_handle();
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(timeout)
            .default_execution_profile_handle(profile.into_handle());
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.user(user, password);
        }
        let tls = config
            .tls
            .client_config()
            .map_err(|error| StoreError::Backend(error.to_string()))?;
        if let Some(tls) = tls {
            builder = builder.tls_context(Some(tls));
        }
        let session = builder.build().await.map_err(|error| {
            StoreError::Unavailable(format!("cannot connect to Cassandra: {error}"))
        })?;
        if config.create_schema {
            for cql in [
                schema::keyspace_cql(config),
                schema::table_cql(&config.keyspace),
                super::subscribers::table_cql(&config.keyspace),
                super::nonces::table_cql(&config.keyspace),
                super::counters::table_cql(&config.keyspace),
                super::cdrs::table_cql(&config.keyspace),
            ] {
                session.query_unpaged(cql, &[]).await.map_err(store_error)?;
            }
        }
        let prepare = |cql: String| {
            let session = &session;
            async move {
                session
                    .prepare(cql)
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))
            }
        };
        let mut select = prepare(statements.select.clone()).await?;
        select.set_is_idempotent(true);
        select.set_execution_profile_handle(Some(read_profile.clone()));
        let mut aors = prepare(statements.aors.clone()).await?;
        aors.set_is_idempotent(true);
        aors.set_execution_profile_handle(Some(read_profile.clone()));
        aors.set_page_size(1000);
        let subscribers =
            super::subscribers::Prepared::new(&session, &config.keyspace, read_profile.clone())
                .await?;
        let write = config.write_consistency.to_driver();
        let nonces = super::nonces::Prepared::new(&session, &config.keyspace, write).await?;
        let counters =
            super::counters::Prepared::new(&session, &config.keyspace, write, read_profile).await?;
        let cdrs = super::cdrs::Prepared::new(&session, &config.keyspace, write).await?;
        let mut insert = prepare(statements.insert.clone()).await?;
        let mut delete = prepare(statements.delete.clone()).await?;
        let mut bump_version = prepare(statements.bump_version.clone()).await?;
        let mut init_version = prepare(statements.init_version.clone()).await?;
        // Inserts and deletes alone would be idempotent, but they only ever
        // run inside the conditional batch, which is not: a blind retry of
        // an applied LWT reports "not applied". So nothing written is.
        for statement in [
            &mut insert,
            &mut delete,
            &mut bump_version,
            &mut init_version,
        ] {
            statement.set_is_idempotent(false);
            statement.set_consistency(write);
        }
        Ok(Connected {
            session,
            subscribers,
            nonces,
            counters,
            cdrs,
            select,
            insert,
            delete,
            bump_version,
            init_version,
            aors,
        })
    }

    fn commit_batch(&self, aor: &str, commit: &Commit<'_>) -> (Batch, Vec<Vec<Option<CqlValue>>>) {
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(false);
        batch.set_consistency(self.insert.get_consistency().unwrap_or_default());
        let mut values = Vec::with_capacity(1 + commit.write.len() + commit.remove.len());
        batch.append_statement(match commit.expected {
            Some(_) => self.bump_version.clone(),
            None => self.init_version.clone(),
        });
        values.push(rows::guard_values(
            aor,
            commit.expected,
            commit.version,
            commit.version_ttl,
        ));
        for binding in &commit.write {
            batch.append_statement(self.insert.clone());
            values.push(rows::insert_values(aor, binding, commit.now));
        }
        for key in commit.remove {
            batch.append_statement(self.delete.clone());
            values.push(rows::delete_values(aor, key));
        }
        (batch, values)
    }
}

#[async_trait]
impl Partitions for Connected {
    async fn read(&self, aor: &str) -> Result<AorRows, StoreError> {
        let result = self
            .session
            .execute_unpaged(&self.select, (aor,))
            .await
            .map_err(store_error)?;
        let rows = result
            .into_rows_result()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let rows = rows
            .rows::<Row>()
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        rows::parse_rows(rows).map_err(|e| StoreError::Backend(e.to_string()))
    }

    async fn commit(&self, aor: &str, commit: &Commit<'_>) -> Result<bool, StoreError> {
        let (batch, values) = self.commit_batch(aor, commit);
        let result = self
            .session
            .batch(&batch, values)
            .await
            .map_err(store_error)?;
        lwt_applied(result)
    }
}

/// Whether a lightweight transaction (`IF ...`) applied: the `[applied]`
/// column of its one result row.
pub(crate) fn lwt_applied(
    result: scylla::response::query_result::QueryResult,
) -> Result<bool, StoreError> {
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Backend(format!("LWT result: {e}")))?;
    let first = rows
        .first_row::<Row>()
        .map_err(|e| StoreError::Backend(format!("LWT result: {e}")))?;
    match first.columns.first() {
        Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
        other => Err(StoreError::Backend(format!(
            "LWT result without [applied]: {other:?}"
        ))),
    }
}

/// Maps a driver error to the store's vocabulary: no replica / no
/// connection → Unavailable, any timeout → Timeout, the rest → Backend.
pub fn store_error(error: ExecutionError) -> StoreError {
    match &error {
        ExecutionError::RequestTimeout(after) => StoreError::Timeout(*after),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => {
            StoreError::Unavailable(error.to_string())
        }
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => match db {
                DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. } => {
                    StoreError::Timeout(Duration::ZERO)
                }
                DbError::Unavailable { .. } | DbError::IsBootstrapping => {
                    StoreError::Unavailable(error.to_string())
                }
                DbError::Overloaded | DbError::RateLimitReached { .. } => StoreError::Overloaded,
                _ => StoreError::Backend(error.to_string()),
            },
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Backend(error.to_string()),
        },
        _ => StoreError::Backend(error.to_string()),
    }
}

#[async_trait]
impl LocationStore for CassandraStore {
    async fn register(
        &self,
        aor: &Aor,
        update: &RegisterUpdate,
        now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        self.guarded(|| async {
            let connected = self.connection().await?;
            ordering::register(
                connected.as_ref(),
                aor.as_str(),
                update,
                now,
                self.config.max_commit_attempts,
                &self.round_trips,
            )
            .await
        })
        .await
    }

    /// Pages through the partition keys (a full scan, which is why only
    /// operators call it), then reads the matching AORs in order until
    /// `limit` of them hold an unexpired binding at `now`.
    async fn list_aors(
        &self,
        filter: &AorFilter,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Aor>, StoreError> {
        use futures_util::StreamExt;
        let connected = self.connection().await?;
        let mut keys = connected
            .session
            .execute_iter(connected.aors.clone(), &[])
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .rows_stream::<(String,)>()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut aors = Vec::new();
        while let Some(row) = keys.next().await {
            let (text,) = row.map_err(|e| StoreError::Backend(e.to_string()))?;
            aors.push(text);
        }
        ordering::list_aors(self, aors, filter, now, limit).await
    }

    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        self.guarded(|| async {
            let connected = self.connection().await?;
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let mut bindings = connected.read(aor.as_str()).await?.bindings;
            // Row TTLs round up to whole seconds; `now` is authoritative.
            bindings.retain(|b| !b.is_expired(now));
            Ok(bindings)
        })
        .await
    }

    async fn purge_expired(&self, _now: SystemTime) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn backend(&self) -> &'static str {
        "cassandra"
    }

    fn expires_natively(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
