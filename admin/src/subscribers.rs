//! `/subscribers`: the node's [`SubscriberStore`] over the admin endpoint,
//! and [`RemoteSubscribers`], the same trait spoken by `switchyard user
//! --admin ADDR`. The CLI computes the HA1s itself: a password never
//! travels, not even over loopback.
//!
//! | request | does |
//! |---|---|
//! | `GET /subscribers[?realm=R]` | `[[realm, user], ...]` |
//! | `GET /subscribers/{realm}/{user}` | the subscriber (HA1s), 404 when none |
//! | `PUT /subscribers/{realm}/{user}` | body = the subscriber as JSON: add or replace |
//! | `DELETE /subscribers/{realm}/{user}` | 204, or 404 when there was none |

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::client::{call, query_value};
use switchyard_auth::{Subscriber, SubscriberStore};
use switchyard_proto::location::StoreError;

pub(super) type Store = Option<Arc<dyn SubscriberStore>>;

#[derive(Debug, Deserialize)]
pub(super) struct RealmQuery {
    realm: Option<String>,
}

fn unavailable() -> Response {
    (
        StatusCode::NOT_FOUND,
        "authentication is off on this node ([auth] enabled = false)\n",
    )
        .into_response()
}

fn failed(error: StoreError) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response()
}

pub(super) async fn list(State(store): State<Store>, Query(q): Query<RealmQuery>) -> Response {
    let Some(store) = store else {
        return unavailable();
    };
    match store.list(q.realm.as_deref()).await {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => failed(e),
    }
}

pub(super) async fn get(
    State(store): State<Store>,
    Path((realm, user)): Path<(String, String)>,
) -> Response {
    let Some(store) = store else {
        return unavailable();
    };
    match store.subscriber(&realm, &user).await {
        Ok(Some(s)) => axum::Json(s).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("no user {user} in {realm}\n"),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

pub(super) async fn put(
    State(store): State<Store>,
    Path((realm, user)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(store) = store else {
        return unavailable();
    };
    // JSON whatever the Content-Type (the admin client sends one type).
    let subscriber: Subscriber = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "{e}
"
                ),
            )
                .into_response();
        }
    };
    if !subscriber.realm.eq_ignore_ascii_case(&realm) || subscriber.user != user {
        return (StatusCode::BAD_REQUEST, "the body names another user\n").into_response();
    }
    match store.put(subscriber).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(e),
    }
}

pub(super) async fn delete(
    State(store): State<Store>,
    Path((realm, user)): Path<(String, String)>,
) -> Response {
    let Some(store) = store else {
        return unavailable();
    };
    match store.remove(&realm, &user).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            format!("no user {user} in {realm}\n"),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

/// A running node's subscribers, through its admin endpoint.
pub struct RemoteSubscribers {
    pub admin: super::client::Admin,
}

fn path(realm: &str, user: &str) -> String {
    format!("/subscribers/{}/{}", query_value(realm), query_value(user))
}

fn backend_error(e: anyhow::Error) -> StoreError {
    StoreError::Backend(format!("{e:#}"))
}

#[async_trait]
impl SubscriberStore for RemoteSubscribers {
    async fn subscriber(&self, realm: &str, user: &str) -> Result<Option<Subscriber>, StoreError> {
        match call(&self.admin, "GET", &path(realm, user), Vec::new()).await {
            Ok(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| StoreError::Backend(e.to_string())),
            Err(e) if format!("{e}").starts_with("no user ") => Ok(None),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn put(&self, subscriber: Subscriber) -> Result<(), StoreError> {
        let body =
            serde_json::to_vec(&subscriber).map_err(|e| StoreError::Backend(e.to_string()))?;
        call(
            &self.admin,
            "PUT",
            &path(&subscriber.realm, &subscriber.user),
            body,
        )
        .await
        .map(drop)
        .map_err(backend_error)
    }

    async fn remove(&self, realm: &str, user: &str) -> Result<bool, StoreError> {
        match call(&self.admin, "DELETE", &path(realm, user), Vec::new()).await {
            Ok(_) => Ok(true),
            Err(e) if format!("{e}").starts_with("no user ") => Ok(false),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn list(&self, realm: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let path = match realm {
            Some(r) => format!("/subscribers?realm={}", query_value(r)),
            None => "/subscribers".to_string(),
        };
        let body = call(&self.admin, "GET", &path, Vec::new())
            .await
            .map_err(backend_error)?;
        serde_json::from_slice(&body).map_err(|e| StoreError::Backend(e.to_string()))
    }

    fn backend(&self) -> &'static str {
        "admin"
    }
}
