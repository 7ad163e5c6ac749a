//! Registrar responses: the 200 OK of RFC 3261 §10.3 step 8 and the
//! rejections of steps 3–7.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchyard_codec::{HeaderName, SipMessage, response_to};

use crate::cluster::{Cluster, TempGruu};
use crate::location::{Aor, Binding, RegisterError, StoreError, q_to_string};
use crate::proxy::request::LocalAnswer;
use crate::registrar::{Reject, RuleError};

/// What a 200 OK carries beyond the bindings.
#[derive(Debug, Clone, Copy, Default)]
pub struct OkExtras<'a> {
    /// Echo the request's Path (RFC 3327 §5.3: the UA supports `path`).
    pub echo_path: bool,
    /// `Require: outbound` (RFC 5626 §6): the request registered a flow.
    pub outbound: bool,
    /// Mint `pub-gruu` and `temp-gruu` for every contact with an instance
    /// (RFC 5627 §5.2: the UA listed `gruu` in Supported).
    pub gruu: Option<&'a Cluster>,
    /// RFC 3581 §4: `received` and `rport` for the top Via of every
    /// response (what [`crate::proxy::request::rfc3581`] found).
    pub received: (Option<&'a str>, Option<u16>),
}

/// The 200 OK listing every current binding of the AOR with the seconds it
/// has left (§10.3 step 8), the Path the request carried (RFC 3327 §5.3:
/// the UA learns the route its registrar will use) and a Date header
/// (§10.3 step 8 "SHOULD", lets simple UAs set their clock).
pub fn ok_response(msg: &SipMessage, bindings: &[Binding], now: SystemTime) -> Bytes {
    let extras = OkExtras {
        echo_path: true,
        ..OkExtras::default()
    };
    ok_response_with(msg, bindings, now, &extras)
}

/// [`ok_response`] with the outbound and GRUU parts chosen by the caller.
pub fn ok_response_with(
    msg: &SipMessage,
    bindings: &[Binding],
    now: SystemTime,
    extras: &OkExtras<'_>,
) -> Bytes {
    let mut sorted: Vec<&Binding> = bindings.iter().filter(|b| !b.is_expired(now)).collect();
    // Highest preference first, then a stable order, so UAs and tests see
    // the same list every time.
    sorted.sort_by(|a, b| {
        b.q_or_default()
            .cmp(&a.q_or_default())
            .then_with(|| a.contact.cmp(&b.contact))
    });
    let aor = msg.to().ok().and_then(|to| Aor::from_uri(&to.uri).ok());
    let contacts: Vec<String> = sorted
        .iter()
        .map(|b| {
            let mut value = contact_value(b, now);
            if let (Some(cluster), Some(aor), Some(instance)) = (extras.gruu, &aor, &b.instance) {
                let generation_ms = instance_generation_ms(&sorted, instance);
                let temp = cluster.temp_gruu(&TempGruu {
                    aor: aor.as_str().to_owned(),
                    instance: instance.clone(),
                    generation_ms,
                });
                let public = Cluster::pub_gruu(aor.as_str(), instance);
                let _ = write!(value, ";pub-gruu=\"{public}\";temp-gruu=\"{temp}\"");
            }
            value
        })
        .collect();

    let mut response = start(msg, 200, "OK", extras);
    for contact in &contacts {
        response = response.header("Contact", contact);
    }
    if extras.echo_path {
        for path in msg.header_all(HeaderName::Path) {
            response = response.header("Path", path);
        }
    }
    if extras.outbound {
        response = response.header("Require", "outbound");
    }
    let date = http_date(now);
    response.header("Date", &date).build()
}

/// When the instance's current registration began: the oldest of its live
/// bindings (one per flow), in milliseconds since the epoch.
fn instance_generation_ms(bindings: &[&Binding], instance: &str) -> u64 {
    bindings
        .iter()
        .filter(|b| {
            b.instance
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(instance))
        })
        .map(|b| millis(b.registered_at))
        .min()
        .unwrap_or(0)
}

/// Milliseconds since the epoch (0 before it).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One Contact value of the 200 OK: the URI as registered plus the
/// parameters the UA needs to recognise its own binding (RFC 5626 §6
/// echoes `+sip.instance` and `reg-id`).
fn contact_value(binding: &Binding, now: SystemTime) -> String {
    use switchyard_codec::text::push_u64;
    let mut value = String::with_capacity(binding.contact.len() + 64);
    value.push('<');
    value.push_str(&binding.contact);
    value.push_str(">;expires=");
    push_u64(&mut value, binding.remaining_secs(now).into());
    if let Some(q) = binding.q {
        value.push_str(";q=");
        value.push_str(&q_to_string(q));
    }
    if let Some(instance) = &binding.instance {
        value.push_str(";+sip.instance=\"");
        value.push_str(instance);
        value.push('"');
    }
    if let Some(reg_id) = binding.reg_id {
        value.push_str(";reg-id=");
        push_u64(&mut value, reg_id.into());
    }
    value
}

impl Reject {
    /// The status code and reason phrase of this rejection.
    pub fn status(&self) -> (u16, String) {
        match self {
            // The reason phrase names the problem (issue requirement: a 400
            // must say what is wrong).
            Reject::BadRequest(problem) => (400, problem.clone()),
            Reject::NotFound(_) => (404, "Not Found".into()),
            Reject::BadExtension(_) => (420, "Bad Extension".into()),
            Reject::ExtensionRequired(_) => (421, "Extension Required".into()),
            Reject::IntervalTooBrief { .. } => (423, "Interval Too Brief".into()),
            Reject::FirstHopLacksOutbound => (439, "First Hop Lacks Outbound Support".into()),
        }
    }

    /// This rejection as the proxy's local answer, with the header each
    /// code requires (Unsupported, Require, Min-Expires).
    pub fn answer(&self) -> LocalAnswer {
        let (code, reason) = self.status();
        let mut answer = LocalAnswer::new(code, reason);
        let header = match self {
            Reject::BadExtension(tags) => Some(("Unsupported", tags.join(", "))),
            Reject::ExtensionRequired(tag) => Some(("Require", tag.to_string())),
            Reject::IntervalTooBrief { min_expires } => {
                Some(("Min-Expires", min_expires.to_string()))
            }
            Reject::BadRequest(_) | Reject::NotFound(_) | Reject::FirstHopLacksOutbound => None,
        };
        answer
            .headers
            .extend(header.map(|(name, value)| (name.to_owned(), value)));
        answer
    }

    /// The final response to `msg` for this rejection ([`Self::answer`]).
    pub fn response(&self, msg: &SipMessage) -> Bytes {
        let answer = self.answer();
        let mut response = response_to(msg, answer.code, &answer.reason).to_tag(&to_tag());
        for (name, value) in &answer.headers {
            response = response.header(name, value);
        }
        response.build()
    }
}

/// 500 for a REGISTER the rules refused (§10.3 steps 6–7: the update is
/// aborted and "the request fails"; 500 is what RFC 3261 implementations
/// answer, and it tells the UA nothing was changed).
pub fn rule_error_response(msg: &SipMessage, error: &RuleError) -> Bytes {
    rule_error_with(msg, error, &OkExtras::default())
}

fn rule_error_with(msg: &SipMessage, error: &RuleError, extras: &OkExtras<'_>) -> Bytes {
    let (code, reason) = rule_error_status(error);
    start(msg, code, reason, extras).build()
}

/// A response we originate, with our To tag and the request's Via stamped.
fn start<'a>(
    msg: &'a SipMessage,
    code: u16,
    reason: &'a str,
    extras: &OkExtras<'a>,
) -> switchyard_codec::ResponseBuilder<'a> {
    let (received, rport) = extras.received;
    response_to(msg, code, reason)
        .to_tag(&to_tag())
        .received(received, rport)
}

fn rule_error_status(error: &RuleError) -> (u16, &'static str) {
    match error {
        RuleError::OutOfOrder { .. } => (500, "Out Of Order CSeq"),
        // Kamailio and OpenSIPS answer 503 here; 403 tells the UA that
        // retrying elsewhere will not help.
        RuleError::TooManyBindings { .. } => (403, "Too Many Registrations"),
    }
}

/// The final response to a REGISTER once the store answered (§10.3 step
/// 8, or the refusal), with its status code: 200 with the bindings, 500
/// or 403 for a rule, 503 with Retry-After for the store.
pub fn final_response(
    msg: &SipMessage,
    result: &Result<Vec<Binding>, RegisterError>,
    now: SystemTime,
    extras: &OkExtras<'_>,
) -> (u16, Bytes) {
    match result {
        Ok(bindings) => (200, ok_response_with(msg, bindings, now, extras)),
        Err(RegisterError::Rejected(error)) => (
            rule_error_status(error).0,
            rule_error_with(msg, error, extras),
        ),
        Err(RegisterError::Store(error)) => (503, store_error_with(msg, error, extras)),
    }
}

/// 503 with Retry-After for a store failure (RFC 3261 §21.5.4): the UA keeps
/// its registration state and retries instead of treating it as final.
pub fn store_error_response(msg: &SipMessage, error: &StoreError) -> Bytes {
    store_error_with(msg, error, &OkExtras::default())
}

fn store_error_with(msg: &SipMessage, error: &StoreError, extras: &OkExtras<'_>) -> Bytes {
    start(msg, 503, "Service Unavailable", extras)
        .header("Retry-After", &error.retry_after_secs().to_string())
        .build()
}

/// A To tag for a response we originate (§8.2.6.2); REGISTER creates no
/// dialog, so it only has to be present and random.
fn to_tag() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = rand::random::<u64>();
    (0..16)
        .map(|i| char::from(HEX[(n >> (60 - 4 * i)) as usize & 0xf]))
        .collect()
}

/// RFC 1123 date in GMT as SIP's Date header wants it (RFC 3261 §20.17),
/// e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
///
/// Every answer a registrar sends carries one, and it changes once a
/// second: each thread keeps the last one it wrote.
pub fn http_date(time: SystemTime) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    LAST.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *text = format_http_date(secs);
            *at = secs;
        }
        text.clone()
    })
}

fn format_http_date(secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), after Howard
/// Hinnant's `civil_from_days` (proleptic Gregorian, eras of 400 years).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
