//! `/registrations`: list and kick bindings of the node's location store
//! (`switchyard registrations list|kick`).
//!
//! | request | does |
//! |---|---|
//! | `GET /registrations[?tenant=T][&domain=D][&user=U][&limit=N]` | `[Registration]`, AOR order, at most `limit` (100) AORs |
//! | `DELETE /registrations?aor=A[&contact=URI]` | removes the AOR's bindings (or one): `{"removed": n}`, 404 when none matched |
//!
//! A kick is a registrar update like a UA's own `Expires: 0`, so it is
//! atomic with concurrent REGISTERs and works on every backend. The phone
//! registers again at its next refresh; to keep it out, remove the
//! subscriber too.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::node::{BindingView, Registration};
use switchyard_engine::TenantsConfig;
use switchyard_location::{Aor, AorFilter, Binding};
use switchyard_proto::location::q_to_string;
use switchyard_proto::registrar::{ContactUpdate, ContactsUpdate, RegisterUpdate};

/// Most AORs one listing returns unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    tenant: Option<String>,
    domain: Option<String>,
    user: Option<String>,
    limit: Option<usize>,
}

/// The AORs a listing asks for; `None` when none can match (a tenant
/// without domains, a domain of another tenant).
fn filter_for(tenants: &TenantsConfig, q: &ListQuery) -> Option<AorFilter> {
    let mut filter = AorFilter {
        domains: q.domain.iter().cloned().collect(),
        user: q.user.clone(),
        ..AorFilter::default()
    };
    let Some(tenant) = &q.tenant else {
        return Some(filter);
    };
    if *tenant == tenants.default {
        // Every domain no other tenant claims.
        filter.excluded = tenants
            .domains
            .iter()
            .filter(|(_, t)| *t != tenant)
            .map(|(d, _)| d.clone())
            .collect();
        return Some(filter);
    }
    if filter.domains.is_empty() {
        filter.domains = tenants
            .domains
            .iter()
            .filter(|(_, t)| *t == tenant)
            .map(|(d, _)| d.clone())
            .collect();
    } else {
        filter.domains.retain(|d| tenants.tenant_of(d) == tenant);
    }
    (!filter.domains.is_empty()).then_some(filter)
}

pub(super) async fn list(State(state): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    let tenants = state.tenants.config();
    let Some(filter) = filter_for(&tenants, &q) else {
        return axum::Json(Vec::<Registration>::new()).into_response();
    };
    let store = state.node.store();
    let now = SystemTime::now();
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let aors = match store.list_aors(&filter, now, limit).await {
        Ok(aors) => aors,
        Err(e) => return failed(e),
    };
    let mut out = Vec::with_capacity(aors.len());
    for aor in aors {
        let mut bindings = match store.lookup(&aor, now).await {
            Ok(bindings) => bindings,
            Err(e) => return failed(e),
        };
        bindings.sort_by(|a, b| a.contact.cmp(&b.contact));
        out.push(Registration {
            tenant: tenants.tenant_of(aor.domain()).to_owned(),
            aor: aor.as_str().to_owned(),
            bindings: bindings.iter().map(|b| view(b, now)).collect(),
        });
    }
    axum::Json(out).into_response()
}

fn failed(e: switchyard_location::StoreError) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn view(b: &Binding, now: SystemTime) -> BindingView {
    BindingView {
        contact: b.contact.clone(),
        expires_in: u64::from(b.remaining_secs(now)),
        q: b.q.map(q_to_string),
        instance: b.instance.clone(),
        reg_id: b.reg_id,
        path: b.path.clone(),
        transport: b.source.transport.as_str().to_ascii_lowercase(),
        received: b.source.remote.to_string(),
        node: b.node.clone(),
        user_agent: b.user_agent.clone(),
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        registered_at: unix(b.registered_at),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct KickQuery {
    aor: String,
    contact: Option<String>,
}

/// `{"removed": n}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Kicked {
    pub removed: usize,
}

pub(super) async fn kick(State(state): State<AdminState>, Query(q): Query<KickQuery>) -> Response {
    let aor = match Aor::parse(&q.aor) {
        Ok(aor) => aor,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{}: {e}\n", q.aor)).into_response(),
    };
    let store = state.node.store();
    let now = SystemTime::now();
    let bindings = match store.lookup(&aor, now).await {
        Ok(bindings) => bindings,
        Err(e) => return failed(e),
    };
    let Some(update) = kick_update(&bindings, q.contact.as_deref(), now) else {
        let what = q
            .contact
            .map_or_else(String::new, |c| format!(" with contact {c}"));
        return (
            StatusCode::NOT_FOUND,
            format!("no registration of {aor}{what}\n"),
        )
            .into_response();
    };
    match store.register(&aor, &update, now).await {
        Ok(outcome) => {
            tracing::info!(%aor, removed = outcome.removed.len(), "registration kicked by the admin");
            axum::Json(Kicked {
                removed: outcome.removed.len(),
            })
            .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// The registrar update that removes `bindings` (all, or the one whose
/// contact is `contact`): a Call-ID of its own, so RFC 3261 §10.3 step 6
/// applies it whatever CSeq the phone used. None when nothing matches.
fn kick_update(
    bindings: &[Binding],
    contact: Option<&str>,
    now: SystemTime,
) -> Option<RegisterUpdate> {
    let chosen: Vec<&Binding> = bindings
        .iter()
        .filter(|b| contact.is_none_or(|c| b.contact == c))
        .collect();
    let first = chosen.first()?;
    let contacts = match contact {
        None => ContactsUpdate::RemoveAll,
        Some(_) => ContactsUpdate::Set(
            chosen
                .iter()
                .map(|b| ContactUpdate {
                    key: b.key(),
                    contact: b.contact.clone(),
                    contact_key: b.contact_key.clone(),
                    instance: b.instance.clone(),
                    reg_id: b.reg_id,
                    q: b.q,
                    expires: 0,
                })
                .collect(),
        ),
    };
    let stamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Some(RegisterUpdate {
        call_id: format!("switchyard-admin-kick-{stamp:x}"),
        cseq: 1,
        contacts,
        path: Vec::new(),
        source: first.source,
        node: None,
        user_agent: Some("switchyard admin".into()),
        max_bindings: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::location::samples::{contact, update};
    use switchyard_proto::registrar::apply;

    #[test]
    fn a_kick_removes_all_or_one_whatever_cseq_the_phone_is_at() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let phone = update(
            "phone-call-id",
            4000,
            vec![
                contact("sip:a@127.0.0.2", 600),
                contact("sip:b@127.0.0.3", 600),
            ],
        );
        let bindings = apply(Vec::new(), &phone, now).unwrap().bindings;
        let one = kick_update(&bindings, Some("sip:b@127.0.0.3"), now).unwrap();
        let left = apply(bindings.clone(), &one, now).unwrap().bindings;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].contact, "sip:a@127.0.0.2");
        let all = kick_update(&bindings, None, now).unwrap();
        assert!(
            apply(bindings.clone(), &all, now)
                .unwrap()
                .bindings
                .is_empty()
        );
        assert!(kick_update(&bindings, Some("sip:c@127.0.0.4"), now).is_none());
        assert!(kick_update(&[], None, now).is_none());
    }
}
