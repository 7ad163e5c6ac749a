//! `GET /calls` and `GET /cdrs`: the dialog layer for operators
//! (`switchyard calls`, `switchyard cdr tail`).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::{AdminState, CdrLine, TenantCalls};

/// Most CDRs one `GET /cdrs` returns.
const MAX_CDRS: usize = 1000;

pub(crate) async fn list(State(state): State<AdminState>) -> Json<Vec<TenantCalls>> {
    Json(state.node.calls())
}

#[derive(Debug, Deserialize)]
pub(crate) struct CdrQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

pub(crate) async fn cdrs(
    State(state): State<AdminState>,
    Query(q): Query<CdrQuery>,
) -> Json<Vec<CdrLine>> {
    let limit = q.limit.unwrap_or(100).min(MAX_CDRS);
    Json(state.node.cdrs(q.after, limit))
}
