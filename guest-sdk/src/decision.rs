//! Builders for the decisions hooks return. The types are the ones
//! generated from the WIT (so what a policy builds is exactly what the host
//! receives); this module only adds constructors.

use serde::Serialize;

use crate::{
    Binding, FailureAction, FailureDecision, Header, HeaderEdit, RegisterDecision, RegisterLimits,
    Reply, RequestAction, RequestDecision, ResponseAction, ResponseDecision, Target, TargetGroup,
};

fn header(name: impl Into<String>, value: impl Into<String>) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

fn json_ctx<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing plain data to JSON cannot fail; a type whose Serialize
    // impl errors on purpose gets an empty ctx.
    serde_json::to_vec(value).unwrap_or_default()
}

impl Reply {
    /// A final response `code` (300..=699) with this reason phrase (empty
    /// for the standard phrase).
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Reply {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header field to the reply.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(header(name, value));
        self
    }

    /// Adds `Retry-After: <seconds>` (RFC 3261 §20.33).
    pub fn retry_after(self, seconds: u32) -> Self {
        self.with_header("Retry-After", seconds.to_string())
    }
}

impl Target {
    /// A branch to `uri` (a SIP or SIPS URI) with no route set.
    pub fn uri(uri: impl Into<String>) -> Self {
        Target {
            uri: uri.into(),
            route: Vec::new(),
        }
    }

    /// Sets the route set pushed before forwarding, top first (e.g. a
    /// carrier's outbound proxy `sip:sbc.example;lr`).
    pub fn route(mut self, route: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.route = route.into_iter().map(Into::into).collect();
        self
    }

    /// The branch for a registered contact: its Contact URI, routed over
    /// its Path (RFC 3327).
    pub fn binding(binding: &Binding) -> Self {
        Target {
            uri: binding.contact.clone(),
            route: binding.path.clone(),
        }
    }
}

impl TargetGroup {
    /// Targets that ring at the same time (parallel fork), with no group
    /// timeout (the proxy's Timer C only).
    pub fn parallel(targets: impl IntoIterator<Item = Target>) -> Self {
        TargetGroup {
            targets: targets.into_iter().collect(),
            timeout_ms: 0,
        }
    }

    /// A group of one target.
    pub fn single(target: Target) -> Self {
        TargetGroup {
            targets: vec![target],
            timeout_ms: 0,
        }
    }

    /// The no-answer timeout of this group: when it passes, its branches
    /// are cancelled, count as 408, and the next group starts. 0: Timer C only.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// One group per target, tried one after another (serial hunt), each
    /// with `timeout_ms` to answer.
    pub fn serial(targets: impl IntoIterator<Item = Target>, timeout_ms: u32) -> Vec<TargetGroup> {
        targets
            .into_iter()
            .map(|t| TargetGroup::single(t).timeout_ms(timeout_ms))
            .collect()
    }

    /// RFC 3261 §16.6 forking over bindings: contacts of equal q ring in
    /// parallel, groups of lower q follow when the higher ones fail. Every
    /// group gets `timeout_ms`.
    pub fn by_q(bindings: &[Binding], timeout_ms: u32) -> Vec<TargetGroup> {
        let mut sorted: Vec<&Binding> = bindings.iter().collect();
        sorted.sort_by_key(|b| std::cmp::Reverse(b.q));
        let mut groups: Vec<(u16, TargetGroup)> = Vec::new();
        for b in sorted {
            match groups.last_mut() {
                Some((q, group)) if *q == b.q => group.targets.push(Target::binding(b)),
                _ => groups.push((
                    b.q,
                    TargetGroup::single(Target::binding(b)).timeout_ms(timeout_ms),
                )),
            }
        }
        groups.into_iter().map(|(_, g)| g).collect()
    }
}

impl RequestDecision {
    fn with_action(action: RequestAction) -> Self {
        RequestDecision {
            action,
            headers: Vec::new(),
            request_uri: None,
            ctx: None,
        }
    }

    /// Default routing: the bindings of the Request-URI (looked up again
    /// if [`RequestDecision::set_request_uri`] changed it), or the
    /// Request-URI itself for other domains.
    pub fn proceed() -> Self {
        Self::with_action(RequestAction::Proceed)
    }

    /// Answers with a final response (300..=699); nothing is forwarded.
    pub fn reply(code: u16, reason: impl Into<String>) -> Self {
        Self::respond(Reply::new(code, reason))
    }

    /// Answers with this reply (e.g. one carrying extra headers).
    pub fn respond(reply: Reply) -> Self {
        Self::with_action(RequestAction::Reply(reply))
    }

    /// Forks to these groups instead of default routing: targets of a group
    /// ring in parallel, groups are tried one after another.
    pub fn relay(groups: impl IntoIterator<Item = TargetGroup>) -> Self {
        Self::with_action(RequestAction::Relay(groups.into_iter().collect()))
    }

    /// Forks to these targets in parallel (one group, no group timeout).
    pub fn relay_to(targets: impl IntoIterator<Item = Target>) -> Self {
        Self::relay([TargetGroup::parallel(targets)])
    }

    /// Answers 302 Moved Temporarily with these Contact URIs.
    pub fn redirect(contacts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::with_action(RequestAction::Redirect(
            contacts.into_iter().map(Into::into).collect(),
        ))
    }

    /// Adds a header field to what this decision sends: to the reply of a
    /// [`RequestDecision::reply`], else to every forwarded copy of the request.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self.action {
            RequestAction::Reply(reply) => reply.headers.push(header(name, value)),
            _ => self.headers.push(HeaderEdit::Add(header(name, value))),
        }
        self
    }

    /// Replaces every field `name` of the forwarded request with one field.
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::Set(header(name, value)));
        self
    }

    /// Removes every field `name` from the forwarded request.
    pub fn remove_header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::Remove(name.into()));
        self
    }

    /// Rewrites the Request-URI for default routing and for every relay
    /// target (targets carry their own URI, so this matters for `proceed`).
    pub fn set_request_uri(mut self, uri: impl Into<String>) -> Self {
        self.request_uri = Some(uri.into());
        self
    }

    /// Stores `ctx` for the later hooks of this transaction.
    pub fn with_ctx(mut self, ctx: impl Into<Vec<u8>>) -> Self {
        self.ctx = Some(ctx.into());
        self
    }

    /// Stores `value` as JSON in the ctx (read it back with `ctx_json`).
    pub fn with_ctx_json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.with_ctx(json_ctx(value))
    }

    /// True when the action is [`RequestAction::Proceed`].
    pub fn is_proceed(&self) -> bool {
        matches!(self.action, RequestAction::Proceed)
    }

    /// The reply's status code, if the action is a reply.
    pub fn reply_code(&self) -> Option<u16> {
        match &self.action {
            RequestAction::Reply(r) => Some(r.code),
            _ => None,
        }
    }

    /// The relay groups, if the action is a relay.
    pub fn relay_groups(&self) -> Option<&[TargetGroup]> {
        match &self.action {
            RequestAction::Relay(g) => Some(g),
            _ => None,
        }
    }
}

impl RegisterLimits {
    /// No caps (equivalent to allowing).
    pub fn new() -> Self {
        RegisterLimits {
            max_contacts: None,
            max_expires: None,
        }
    }

    /// The AOR may hold at most `n` bindings after this REGISTER; more are
    /// refused with 403.
    pub fn max_contacts(mut self, n: u32) -> Self {
        self.max_contacts = Some(n);
        self
    }

    /// Expiry values above `seconds` are lowered to it.
    pub fn max_expires(mut self, seconds: u32) -> Self {
        self.max_expires = Some(seconds);
        self
    }
}

impl Default for RegisterLimits {
    fn default() -> Self {
        RegisterLimits::new()
    }
}

impl RegisterDecision {
    /// Let the registrar proceed as usual.
    pub fn allow() -> Self {
        RegisterDecision::Allow
    }

    /// Refuse the REGISTER with this final response (300..=699).
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        RegisterDecision::Reject(Reply::new(code, reason))
    }

    /// Refuse the REGISTER with this reply (e.g. with Retry-After).
    pub fn reject_with(reply: Reply) -> Self {
        RegisterDecision::Reject(reply)
    }

    /// Let the registrar proceed within these caps.
    pub fn limit(limits: RegisterLimits) -> Self {
        RegisterDecision::Limit(limits)
    }
}

impl From<RegisterLimits> for RegisterDecision {
    fn from(limits: RegisterLimits) -> Self {
        RegisterDecision::Limit(limits)
    }
}

impl ResponseDecision {
    /// Forward the response (subject to RFC 3261 §16.7 response selection).
    pub fn pass() -> Self {
        ResponseDecision {
            action: ResponseAction::Pass,
            headers: Vec::new(),
            ctx: None,
        }
    }

    /// Do not forward (provisional responses only; a final is always handled).
    pub fn drop() -> Self {
        ResponseDecision {
            action: ResponseAction::Drop,
            headers: Vec::new(),
            ctx: None,
        }
    }

    /// Appends a header field to the forwarded response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::Add(header(name, value)));
        self
    }

    /// Replaces every field `name` of the forwarded response with one field.
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::Set(header(name, value)));
        self
    }

    /// Removes every field `name` from the forwarded response.
    pub fn remove_header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(HeaderEdit::Remove(name.into()));
        self
    }

    /// Stores `ctx` for the later hooks of this transaction.
    pub fn with_ctx(mut self, ctx: impl Into<Vec<u8>>) -> Self {
        self.ctx = Some(ctx.into());
        self
    }

    /// Stores `value` as JSON in the ctx.
    pub fn with_ctx_json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.with_ctx(json_ctx(value))
    }
}

impl FailureDecision {
    fn with_action(action: FailureAction) -> Self {
        FailureDecision { action, ctx: None }
    }

    /// Send the best response upstream.
    pub fn fail() -> Self {
        Self::with_action(FailureAction::Fail)
    }

    /// Try these groups next (serial failover, e.g. busy → voicemail).
    pub fn relay(groups: impl IntoIterator<Item = TargetGroup>) -> Self {
        Self::with_action(FailureAction::Relay(groups.into_iter().collect()))
    }

    /// Answer with this final response instead of the best one.
    pub fn reply(code: u16, reason: impl Into<String>) -> Self {
        Self::respond(Reply::new(code, reason))
    }

    /// Answer with this reply instead of the best response.
    pub fn respond(reply: Reply) -> Self {
        Self::with_action(FailureAction::Reply(reply))
    }

    /// Stores `ctx` for the later hooks of this transaction.
    pub fn with_ctx(mut self, ctx: impl Into<Vec<u8>>) -> Self {
        self.ctx = Some(ctx.into());
        self
    }

    /// Stores `value` as JSON in the ctx.
    pub fn with_ctx_json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.with_ctx(json_ctx(value))
    }

    /// True when the action is [`FailureAction::Fail`].
    pub fn is_fail(&self) -> bool {
        matches!(self.action, FailureAction::Fail)
    }

    /// The relay groups, if the action is a relay.
    pub fn relay_groups(&self) -> Option<&[TargetGroup]> {
        match &self.action {
            FailureAction::Relay(g) => Some(g),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_goes_where_the_decision_sends() {
        let d = RequestDecision::reply(486, "Busy Here").with_header("Retry-After", "60");
        assert_eq!(d.reply_code(), Some(486));
        assert!(d.headers.is_empty());
        match &d.action {
            RequestAction::Reply(r) => assert_eq!(r.headers, [header("Retry-After", "60")]),
            other => panic!("{other:?}"),
        }
        let d = RequestDecision::proceed()
            .with_header("X-A", "1")
            .remove_header("X-B");
        assert_eq!(
            d.headers,
            [
                HeaderEdit::Add(header("X-A", "1")),
                HeaderEdit::Remove("X-B".into())
            ]
        );
    }

    #[test]
    fn groups_by_q() {
        let bindings = [
            Binding::new("sip:a@h").with_q(500),
            Binding::new("sip:b@h").with_path(["<sip:edge;lr>"]),
            Binding::new("sip:c@h"),
        ];
        let groups = TargetGroup::by_q(&bindings, 7000);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets.len(), 2);
        assert_eq!(groups[0].targets[0].uri, "sip:b@h");
        assert_eq!(groups[0].targets[0].route, ["<sip:edge;lr>"]);
        assert_eq!(groups[1].targets[0].uri, "sip:a@h");
        assert!(groups.iter().all(|g| g.timeout_ms == 7000));
    }

    #[test]
    fn ctx_json_round_trip() {
        let d = FailureDecision::fail().with_ctx_json(&[1, 2]);
        assert_eq!(d.ctx.as_deref(), Some(&b"[1,2]"[..]));
    }
}
