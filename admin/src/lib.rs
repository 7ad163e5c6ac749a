//! The local admin endpoint: HTTP on a loopback address, spoken by the
//! `switchyard` CLI ([`client`]). Every route is listed, with its
//! parameters, in [`openapi::ROUTES`] and served as `GET /openapi.json`.
//!
//! Access ([`guard`]): a bearer token from `[admin] token_file` (required
//! when the endpoint listens beyond loopback), and Host/Origin checks
//! against DNS rebinding and cross-site requests from a browser.

mod calls;
pub mod client;
pub mod guard;
pub mod latency;
mod metrics;
mod node;
pub mod openapi;
pub mod registrations;
mod subscribers;

pub use client::Admin;
pub use node::{
    BindingView, CdrLine, Count, NodeControl, NodeStatus, Registration, ReloadReport, TenantCalls,
    TenantInfo, TransactionStats,
};
pub use subscribers::RemoteSubscribers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;

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
    /// A file holding the token every request but `/health` must present
    /// (`Authorization: Bearer ...`; the CLI's `--token-file`). Required
    /// when `listen` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Host names the endpoint answers to besides IP literals and
    /// `localhost` (any other `Host` is refused: DNS rebinding).
    pub allowed_hosts: Vec<String>,
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

/// The port the CLI uses when `--admin` is not given.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9060";

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(DEFAULT_ADMIN.parse().expect("valid address")),
            max_module_bytes: 32 * 1024 * 1024,
            token_file: None,
            allowed_hosts: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// The guard for this configuration: reads the token file. Refuses an
    /// endpoint beyond loopback without a token, and an empty token.
    pub fn guard(&self) -> std::io::Result<guard::Guard> {
        let token = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("[admin] token_file {}: {e}", path.display()),
                    )
                })?;
                let token = text.trim();
                if token.len() < 16 {
                    return Err(std::io::Error::other(format!(
                        "[admin] token_file {}: the token must have at least 16 characters",
                        path.display()
                    )));
                }
                Some(Arc::from(token))
            }
            None => None,
        };
        if let Some(addr) = self.listen
            && !addr.ip().is_loopback()
            && token.is_none()
        {
            return Err(std::io::Error::other(format!(
                "[admin] listen = \"{addr}\" is beyond loopback: set [admin] token_file"
            )));
        }
        Ok(guard::Guard {
            token,
            allowed_hosts: self.allowed_hosts.clone(),
        })
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

#[derive(Clone)]
struct AdminState {
    tenants: Arc<Tenants>,
    node: Arc<dyn NodeControl>,
    metrics: Arc<prometheus_client::registry::Registry>,
}

/// Starts the endpoint; returns the bound address and the server task.
pub async fn serve(
    config: &AdminConfig,
    tenants: Arc<Tenants>,
    node: Arc<dyn NodeControl>,
    subscribers: Option<Arc<dyn switchyard_auth::SubscriberStore>>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let Some(addr) = config.listen else {
        return Err(std::io::Error::other("admin endpoint disabled"));
    };
    let guard = Arc::new(config.guard()?);
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
        .route("/status", get(status))
        .route("/calls", get(calls::list))
        .route("/cdrs", get(calls::cdrs))
        .route("/transactions", get(transactions))
        .route("/tenants", get(tenant_list))
        .route("/reload", post(reload))
        .route("/tls/reload", post(reload_certificates))
        .route(
            "/registrations",
            get(registrations::list).delete(registrations::kick),
        )
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .layer(DefaultBodyLimit::max(config.max_module_bytes))
        .with_state(AdminState {
            metrics: Arc::new(metrics::registry(node.clone(), tenants.clone())),
            tenants,
            node,
        })
        .merge(users)
        .layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            guard::enforce,
        ));
    info!(addr = %bound, token = guard.token.is_some(), "admin endpoint listening");
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "admin endpoint stopped");
        }
    });
    Ok((bound, task))
}

async fn status(State(state): State<AdminState>) -> axum::Json<NodeStatus> {
    axum::Json(state.node.status())
}

async fn transactions(State(state): State<AdminState>) -> axum::Json<TransactionStats> {
    axum::Json(state.node.status().transactions)
}

async fn tenant_list(State(state): State<AdminState>) -> axum::Json<Vec<TenantInfo>> {
    let config = state.tenants.config();
    let mut out: Vec<TenantInfo> = state
        .tenants
        .list()
        .into_iter()
        .map(|policy| TenantInfo {
            domains: Vec::new(),
            default: policy.tenant == config.default,
            tenant: policy.tenant.clone(),
            policy: serde_json::to_value(policy).unwrap_or_default(),
        })
        .collect();
    for (domain, tenant) in &config.domains {
        match out.iter_mut().find(|t| &t.tenant == tenant) {
            Some(info) => info.domains.push(domain.clone()),
            None => out.push(TenantInfo {
                tenant: tenant.clone(),
                domains: vec![domain.clone()],
                default: *tenant == config.default,
                policy: serde_json::json!({"source": "native"}),
            }),
        }
    }
    out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    axum::Json(out)
}

async fn reload(State(state): State<AdminState>) -> Response {
    match state.node.reload().await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response(),
    }
}

/// Reads the certificate files again; the old ones stay on any error.
async fn reload_certificates(State(state): State<AdminState>) -> (StatusCode, String) {
    // A few small files: quick enough for the handler itself.
    match state.node.reload_tls() {
        Ok(()) => (StatusCode::OK, "reloaded\n".into()),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")),
    }
}

async fn list(State(state): State<AdminState>) -> axum::Json<Vec<TenantStatus>> {
    axum::Json(state.tenants.list())
}

#[derive(Debug, Deserialize)]
struct LoadQuery {
    /// Shown in listings instead of `upload` (the CLI sends the file path).
    source: Option<String>,
    /// One link of the tenant's chain (`[[tenants.chains.<tenant>]] name`).
    link: Option<String>,
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
    let slot = match query.link {
        Some(link) => format!("{tenant}/{link}"),
        None => tenant,
    };
    match state.tenants.load(&slot, source).await {
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

async fn metrics_text(State(state): State<AdminState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        Ok(()) => (
            [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
