//! Builders of bindings and REGISTER updates for tests: this crate's own,
//! the host's store conformance suite and the end-to-end tests (feature
//! `testing`). Never in a release build.

use std::time::SystemTime;

use crate::location::{Binding, BindingKey};
use crate::net::{Source, Transport};
use crate::registrar::{ContactUpdate, ContactsUpdate, RegisterUpdate};

/// A UDP source on loopback.
pub fn sample_source() -> Source {
    Source {
        transport: Transport::Udp,
        remote: "127.0.0.2:40000".parse().expect("address"),
        local: "127.0.0.1:5060".parse().expect("address"),
    }
}

/// A plain contact (identity = its URI) expiring in `expires` seconds.
pub fn contact(uri: &str, expires: u32) -> ContactUpdate {
    ContactUpdate {
        key: BindingKey::Contact(uri.to_owned()),
        contact: uri.to_owned(),
        contact_key: uri.to_owned(),
        instance: None,
        reg_id: None,
        q: None,
        expires,
    }
}

/// A contact identified by `+sip.instance` and `reg-id` (RFC 5626).
pub fn outbound_contact(uri: &str, instance: &str, reg_id: u32, expires: u32) -> ContactUpdate {
    ContactUpdate {
        key: BindingKey::instance(instance, Some(reg_id)),
        instance: Some(instance.to_owned()),
        reg_id: Some(reg_id),
        ..contact(uri, expires)
    }
}

/// A REGISTER from `sample_source()` with the given ordering and contacts.
pub fn update(call_id: &str, cseq: u32, contacts: Vec<ContactUpdate>) -> RegisterUpdate {
    RegisterUpdate {
        call_id: call_id.to_owned(),
        cseq,
        contacts: ContactsUpdate::Set(contacts),
        path: Vec::new(),
        source: sample_source(),
        node: None,
        user_agent: None,
        max_bindings: None,
    }
}

/// A `Contact: *` removal.
pub fn remove_all(call_id: &str, cseq: u32) -> RegisterUpdate {
    RegisterUpdate {
        contacts: ContactsUpdate::RemoveAll,
        ..update(call_id, cseq, Vec::new())
    }
}

/// A binding as a one-hour REGISTER at `now` would create it.
pub fn sample_binding(uri: &str, now: SystemTime) -> Binding {
    let update = update("sample-call", 1, vec![contact(uri, 3600)]);
    let outcome = crate::registrar::apply(Vec::new(), &update, now).expect("fresh binding");
    outcome.bindings.into_iter().next().expect("one binding")
}
