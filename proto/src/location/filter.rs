//! Which AORs an operator asks for (`switchyard registrations list`).

use serde::{Deserialize, Serialize};

use super::Aor;

/// AORs of some domains (all when `domains` is empty) and, optionally, one
/// user. Matching is exact: domains case-insensitively, the user as
/// [`Aor`] keeps it (case-sensitive, RFC 3261 §19.1.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AorFilter {
    pub domains: Vec<String>,
    /// Domains left out even when `domains` is empty (the default tenant:
    /// every domain no other tenant has).
    #[serde(default)]
    pub excluded: Vec<String>,
    pub user: Option<String>,
}

impl AorFilter {
    pub fn matches(&self, aor: &Aor) -> bool {
        let domain_ok = self.domains.is_empty()
            || self
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(aor.domain()));
        let excluded = self
            .excluded
            .iter()
            .any(|d| d.eq_ignore_ascii_case(aor.domain()));
        let user_ok = match &self.user {
            None => true,
            Some(user) => aor.user() == Some(user.as_str()),
        };
        domain_ok && !excluded && user_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_ignore_case_and_users_do_not() {
        let aor = Aor::parse("sip:Alice@Example.TEST").unwrap();
        let by_domain = AorFilter {
            domains: vec!["other.test".into(), "EXAMPLE.test".into()],
            ..AorFilter::default()
        };
        assert!(by_domain.matches(&aor));
        assert!(AorFilter::default().matches(&aor));
        let alice = AorFilter {
            user: Some("Alice".into()),
            ..AorFilter::default()
        };
        assert!(alice.matches(&aor));
        let lower = AorFilter {
            user: Some("alice".into()),
            ..alice
        };
        assert!(!lower.matches(&aor));
        let elsewhere = AorFilter {
            domains: vec!["other.test".into()],
            ..AorFilter::default()
        };
        assert!(!elsewhere.matches(&aor));
        let not_example = AorFilter {
            excluded: vec!["example.test".into()],
            ..AorFilter::default()
        };
        assert!(!not_example.matches(&aor));
    }
}
