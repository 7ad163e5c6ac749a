//! The binding-update rules of RFC 3261 §10.3 steps 6–8, as a pure function.
//!
//! Every [`LocationStore`](crate::location::LocationStore) backend calls
//! [`apply`] inside its per-AOR atomic section (a shard lock, a conditional
//! write), so all backends agree on the semantics by construction.

use std::time::{Duration, SystemTime};

use crate::location::{Binding, BindingKey};
use crate::net::Source;

/// What one REGISTER asks of the location service for one AOR, parsed and
/// validated (see [`parse_register`](crate::registrar::parse_register)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterUpdate {
    pub call_id: String,
    pub cseq: u32,
    pub contacts: ContactsUpdate,
    /// Path header values, topmost first, recorded on every binding written
    /// (empty unless the UA supports `path`, RFC 3327 §5.3).
    pub path: Vec<String>,
    pub source: Source,
    pub node: Option<String>,
    pub user_agent: Option<String>,
    /// Most bindings the AOR may hold after this request (a policy's
    /// per-tenant registration cap); checked atomically with the update.
    pub max_bindings: Option<u32>,
}

/// The Contact part of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactsUpdate {
    /// No Contact header: a query for the current bindings (RFC 3261 §10.2.3).
    Fetch,
    /// `Contact: *` with `Expires: 0`: remove every binding (§10.2.2). Other
    /// forms of `*` are rejected while parsing, so they cannot reach here.
    RemoveAll,
    /// Add, refresh or (with `expires == 0`) remove these contacts.
    Set(Vec<ContactUpdate>),
}

/// One Contact of a REGISTER, with its expiry already resolved and clamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactUpdate {
    pub key: BindingKey,
    /// The contact URI as sent.
    pub contact: String,
    /// Normalised contact URI (RFC 3261 §19.1.4), see [`Binding::contact_key`].
    pub contact_key: String,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub q: Option<u16>,
    /// Seconds; 0 removes the binding.
    pub expires: u32,
}

/// The result of applying a REGISTER to an AOR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// Every unexpired binding of the AOR after the update: what the store
    /// now holds and what the 200 OK lists (§10.3 step 8).
    pub bindings: Vec<Binding>,
    /// Keys of the bindings this request added or refreshed (a subset of
    /// `bindings`): the rows a backend has to write.
    pub written: Vec<BindingKey>,
    /// Keys of the bindings this request removed (`Expires: 0` or `*`): the
    /// rows a backend has to delete. Bindings that merely expired are dropped
    /// from `bindings` without being listed here; TTL-based backends let them
    /// lapse on their own.
    pub removed: Vec<BindingKey>,
}

/// Why the rules refused a REGISTER. Nothing is changed when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// §10.3 steps 6–7: same Call-ID but a CSeq not higher than the one
    /// stored — a delayed or replayed request. The whole update is aborted.
    #[error("CSeq {request} is not higher than {stored} stored for Call-ID {call_id}")]
    OutOfOrder {
        call_id: String,
        stored: u32,
        request: u32,
    },
    /// The AOR would hold more bindings than a policy allows.
    #[error("{count} bindings exceed the limit of {max}")]
    TooManyBindings { count: usize, max: u32 },
}

/// Applies `update` to an AOR's `existing` bindings at `now`.
///
/// All-or-nothing (§10.3 step 7: updates are committed only if every one
/// succeeds): on error the caller keeps `existing` untouched. Expired
/// bindings in `existing` are treated as absent, so a stale one can neither
/// block nor be refreshed by an out-of-order check.
pub fn apply(
    existing: Vec<Binding>,
    update: &RegisterUpdate,
    now: SystemTime,
) -> Result<RegisterOutcome, RuleError> {
    let mut bindings: Vec<Binding> = existing
        .into_iter()
        .filter(|b| !b.is_expired(now))
        .collect();
    let mut outcome = RegisterOutcome::default();

    match &update.contacts {
        ContactsUpdate::Fetch => {}
        ContactsUpdate::RemoveAll => {
            // §10.3 step 6: a binding from another Call-ID is removed; one
            // from this Call-ID only if the request's CSeq is higher.
            for binding in &bindings {
                check_order(binding, update)?;
            }
            outcome.removed = bindings.drain(..).map(|b| b.key()).collect();
        }
        ContactsUpdate::Set(contacts) => {
            // Ordering is judged against the bindings as they were before this
            // request, so the same contact listed twice is not "out of order"
            // with itself; the later listing wins.
            for contact in contacts {
                if let Some(binding) = bindings.iter().find(|b| b.has_key(&contact.key)) {
                    check_order(binding, update)?;
                }
            }
            for contact in contacts {
                upsert(&mut bindings, &mut outcome, contact, update, now);
            }
        }
    }

    if let Some(max) = update.max_bindings
        && bindings.len() > max as usize
        && !outcome.written.is_empty()
    {
        // Only a request that adds or refreshes is refused: removing
        // bindings from an AOR over its cap must still work.
        return Err(RuleError::TooManyBindings {
            count: bindings.len(),
            max,
        });
    }
    bindings.shrink_to_fit();
    outcome.bindings = bindings;
    Ok(outcome)
}

/// §10.3 step 7: a binding may be changed by a request with a different
/// Call-ID, or by the same Call-ID with a higher CSeq.
fn check_order(binding: &Binding, update: &RegisterUpdate) -> Result<(), RuleError> {
    if binding.call_id == update.call_id && update.cseq <= binding.cseq {
        return Err(RuleError::OutOfOrder {
            call_id: update.call_id.clone(),
            stored: binding.cseq,
            request: update.cseq,
        });
    }
    Ok(())
}

fn upsert(
    bindings: &mut Vec<Binding>,
    outcome: &mut RegisterOutcome,
    contact: &ContactUpdate,
    update: &RegisterUpdate,
    now: SystemTime,
) {
    let position = bindings.iter().position(|b| b.has_key(&contact.key));
    let mark = |list: &mut Vec<BindingKey>| {
        if !list.contains(&contact.key) {
            list.push(contact.key.clone());
        }
    };
    if contact.expires == 0 {
        if let Some(index) = position {
            bindings.remove(index);
            outcome.written.retain(|key| *key != contact.key);
            mark(&mut outcome.removed);
        }
        return;
    }
    let registered_at = position.map_or(now, |index| bindings[index].registered_at);
    let binding = Binding {
        contact: contact.contact.clone(),
        contact_key: contact.contact_key.clone(),
        instance: contact.instance.clone(),
        reg_id: contact.reg_id,
        q: contact.q,
        path: update.path.clone(),
        call_id: update.call_id.clone(),
        cseq: update.cseq,
        expires_at: now + Duration::from_secs(contact.expires.into()),
        registered_at,
        source: update.source,
        node: update.node.clone(),
        user_agent: update.user_agent.clone(),
    };
    match position {
        Some(index) => bindings[index] = binding,
        None => bindings.push(binding),
    }
    outcome.removed.retain(|key| *key != contact.key);
    mark(&mut outcome.written);
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
