//! The registrar (RFC 3261 §10.3): REGISTER in, location-store update,
//! 200 OK listing the current bindings out.
//!
//! Sans-IO in three steps:
//! 1. [`parse_register`] — validate the request and build a [`RegisterUpdate`]
//!    (steps 3–7 that need no stored state), or a [`Reject`].
//! 2. the store applies [`apply`] (steps 6–7 against stored state)
//!    atomically for the AOR (the host's `LocationStore::register`).
//! 3. [`ok_response`] — the 200 OK of step 8.
//!
//! The host's `registrar::handle_in` glues the three around its store.

mod request;
mod response;
mod rules;

use serde::Deserialize;

pub use request::{
    RegisterContext, Reject, contact_key, longest_grant, parse_register, parse_register_in,
    supports,
};
pub use response::{
    OkExtras, final_response, http_date, millis, ok_response, ok_response_with,
    rule_error_response, store_error_response,
};
pub use rules::{ContactUpdate, ContactsUpdate, RegisterOutcome, RegisterUpdate, RuleError, apply};

/// Registration intervals, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Used when a contact has neither an `expires` parameter nor an
    /// Expires header (RFC 3261 §10.3 step 7 suggests one hour).
    pub default_expires: u32,
    /// Shorter non-zero requests get 423 Interval Too Brief with this as
    /// Min-Expires: bounds the refresh rate a UA can impose on us.
    pub min_expires: u32,
    /// Longer requests are shortened to this (§10.3 step 7 allows it): bounds
    /// how long a vanished UA stays reachable.
    pub max_expires: u32,
    /// Bindings one AOR may hold; a REGISTER that would add more gets
    /// 403 (a policy's `on-register` limit can lower it, not raise it).
    pub max_contacts: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 16,
        }
    }
}

/// A registrar configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "registrar expires must satisfy 0 < min_expires <= default_expires <= max_expires, \
         got min {min}, default {default}, max {max}"
    )]
    ExpiresOutOfOrder { min: u32, default: u32, max: u32 },
}

impl RegistrarConfig {
    /// Refuses settings that would reject every registration or make the
    /// default unusable, so a typo fails at start-up rather than at runtime.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (min, default, max) = (self.min_expires, self.default_expires, self.max_expires);
        if min == 0 || min > default || default > max {
            return Err(ConfigError::ExpiresOutOfOrder { min, default, max });
        }
        Ok(())
    }
}

/// Per-request caps on top of the [`RegistrarConfig`] (a policy's
/// `on-register` limit decision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Most bindings the AOR may hold afterwards; more: 403.
    pub max_bindings: Option<u32>,
    /// Longer expiry values are shortened to this (§10.3 step 7).
    pub max_expires: Option<u32>,
}

/// Puts the configured contact cap and a policy's [`Limits`] on a parsed
/// REGISTER (a policy may lower the cap, never raise it), and tells
/// whether it registers an RFC 5626 flow (a `reg-id` contact that is not
/// being removed), which the 200 OK then confirms with `Require: outbound`.
pub fn limit(update: &mut RegisterUpdate, config: &RegistrarConfig, limits: Limits) -> bool {
    update.max_bindings = Some(
        limits
            .max_bindings
            .map_or(config.max_contacts, |m| m.min(config.max_contacts)),
    );
    let ContactsUpdate::Set(contacts) = &mut update.contacts else {
        return false;
    };
    if let Some(max) = limits.max_expires {
        for contact in contacts.iter_mut() {
            contact.expires = contact.expires.min(max.max(1));
        }
    }
    contacts.iter().any(|c| c.reg_id.is_some() && c.expires > 0)
}

/// Builds REGISTER requests for the registrar's unit tests.
#[cfg(any(test, feature = "testing"))]
pub mod test_support {
    use switchyard_codec::{Bytes, SipMessage};

    /// A REGISTER for `alice@sip.test` from 127.0.0.2 with `cseq` and the
    /// given extra header lines (Contact, Expires, ...).
    pub fn register(cseq: u32, extra: &[&str]) -> SipMessage {
        let mut text = format!(
            "REGISTER sip:sip.test SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.2:40000;branch=z9hG4bKreg{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@sip.test>;tag=ua1\r\n\
             To: <sip:alice@sip.test>\r\n\
             Call-ID: reg-call-1@127.0.0.2\r\n\
             CSeq: {cseq} REGISTER\r\n"
        );
        for line in extra {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        SipMessage::parse(Bytes::from(text)).expect("test REGISTER parses")
    }

    pub fn source() -> crate::net::Source {
        crate::location::samples::sample_source()
    }
}
