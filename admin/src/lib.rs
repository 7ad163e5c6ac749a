//! The local admin endpoint: HTTP on a loopback address, spoken by
//! `switchyard policy load|list` (see [`client`]).
//!
//! | request                     | does                                              |
//! |-----------------------------|---------------------------------------------------|
//! | `GET /policies`             | every tenant's policy: source, version, counters  |
//! | `PUT /policies/{tenant}`    | body = a `.wasm` component: validate, then publish |
//! | `GET /metrics`              | node and policy counters, Prometheus text format  |
//! | `GET /health`               | `ok`                                              |
//! | `/subscribers...`           | the node's subscribers (`switchyard user --admin`), see [`subscribers`] |
//!
//! There is no authentication: the endpoint is meant for the node's own
//! host, and binding it to a non-loopback address logs a warning.

pub mod client;
mod metrics;
mod subscribers;

pub use subscribers::RemoteSubscribers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use switchyard_engine::tenants::{ModuleSource, TenantStatus, Tenants};

/// `[admin]`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin endpoint; `"off"` disables it (TOML has no null).
    #[serde(deserialize_with = "listen_or_off")]
    pub listen: Option<SocketAddr>,
    /// Largest policy module accepted, in bytes.
    pub max_module_bytes: usize,
}

fn listen_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("`{text}` is not ADDR:PORT or \"off\"")))
}

/// The port `switchyard policy` uses when `--admin` is not given.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9060";

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(DEFAULT_ADMIN.parse().expect("valid address")),
            max_module_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Answer to a successful `PUT /policies/{tenant}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loaded {
    pub status: TenantStatusWire,
    /// From the request's arrival to the new version serving, in ms.
    pub elapsed_ms: f64,
}

/// [`TenantStatus`] as it travels (also what the client parses).
pub type TenantStatusWire = serde_json::Value;

/// Reloads the node's TLS certificates (`POST /tls/reload`).
pub type ReloadTls = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    tenants: Arc<Tenants>,
    stats: Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>,
    reload_tls: Option<ReloadTls>,
}

/// Starts the endpoint; returns the bound address and the server task.
pub async fn serve(
    config: &AdminConfig,
    tenants: Arc<Tenants>,
    stats: Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>,
    subscribers: Option<Arc<dyn switchyard_auth::SubscriberStore>>,
    reload_tls: Option<ReloadTls>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let Some(addr) = config.listen else {
        return Err(std::io::Error::other("admin endpoint disabled"));
    };
    if !addr.ip().is_loopback() {
        warn!(%addr, "the admin endpoint has no authentication and listens beyond loopback");
    }
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let users = Router::new()
        .route("/subscribers", get(subscribers::list))
        .route(
            "/subscribers/{realm}/{user}",
            get(subscribers::get)
                .put(subscribers::put)
                .delete(subscribers::delete),
        )
        .with_state(subscribers);
    let app = Router::new()
        .route("/policies", get(list))
        .route("/policies/{tenant}", axum::routing::put(load))
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok\n" }))
        .route("/tls/reload", axum::routing::post(reload_certificates))
        .layer(DefaultBodyLimit::max(config.max_module_bytes))
        .with_state(AdminState {
            tenants,
            stats,
            reload_tls,
        })
        .merge(users);
    info!(addr = %bound, "admin endpoint listening");
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            warn!(%error, "admin endpoint stopped");
        }
    });
    Ok((bound, task))
}

/// Reads the certificate files again; the old ones stay on any error.
async fn reload_certificates(State(state): State<AdminState>) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    match &state.reload_tls {
        None => (StatusCode::NOT_FOUND, "no TLS on this node\n".into()),
        // A few small files: quick enough for the handler itself.
        Some(reload) => match reload() {
            Ok(()) => (StatusCode::OK, "reloaded\n".into()),
            Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")),
        },
    }
}

async fn list(State(state): State<AdminState>) -> axum::Json<Vec<TenantStatus>> {
    axum::Json(state.tenants.list())
}

#[derive(Debug, Deserialize)]
struct LoadQuery {
    /// Shown in listings instead of `upload` (the CLI sends the file path).
    source: Option<String>,
}

async fn load(
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Query(query): Query<LoadQuery>,
    body: Bytes,
) -> Response {
    let source = ModuleSource::Bytes {
        label: query.source.unwrap_or_else(|| "upload".into()),
        bytes: body.to_vec(),
    };
    match state.tenants.load(&tenant, source).await {
        Ok((status, elapsed)) => axum::Json(Loaded {
            status: serde_json::to_value(status).unwrap_or_default(),
            elapsed_ms: elapsed.as_secs_f64() * 1e3,
        })
        .into_response(),
        Err(error) => {
            switchyard_engine::tenants::log_refused(&error);
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{error}\n")).into_response()
        }
    }
}

async fn metrics_text(State(state): State<AdminState>) -> String {
    metrics::render(&(state.stats)(), &state.tenants)
}
