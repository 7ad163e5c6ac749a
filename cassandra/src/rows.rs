//! Row ⇄ [`Binding`] mapping and TTL arithmetic (pure).
//!
//! Values are dynamic [`CqlValue`]s in the column order of
//! [`BINDING_COLUMNS`](crate::schema::BINDING_COLUMNS), so the
//! mapping is testable without a server and one prepared INSERT serves all.
//! Timestamps are stored in milliseconds (CQL `timestamp`): sub-millisecond
//! parts of `expires_at`/`registered_at` are truncated.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scylla::value::{CqlTimestamp, CqlValue, Row};

use switchyard_location::{Binding, BindingKey};
use switchyard_proto::net::{Source, Transport};

/// Cassandra's largest TTL (20 years).
pub const MAX_TTL_SECS: i32 = 630_720_000;

/// The clustering key text of a binding identity. Prefixed so an instance
/// key can never collide with a contact URI.
pub fn binding_key_text(key: &BindingKey) -> String {
    match key {
        BindingKey::Instance {
            instance,
            reg_id: Some(reg_id),
        } => {
            format!("i:{instance};reg-id={reg_id}")
        }
        BindingKey::Instance {
            instance,
            reg_id: None,
        } => format!("i:{instance}"),
        BindingKey::Contact(contact) => format!("c:{contact}"),
    }
}

/// Row TTL for a binding written at `now`: its remaining lifetime rounded up
/// to whole seconds (so Cassandra never drops it before `expires_at`), at
/// least 1 (TTL 0 would mean "never expires") and at most Cassandra's cap.
pub fn ttl_secs(expires_at: SystemTime, now: SystemTime) -> i32 {
    let left = expires_at.duration_since(now).unwrap_or_default();
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    i32::try_from(secs)
        .unwrap_or(MAX_TTL_SECS)
        .clamp(1, MAX_TTL_SECS)
}

/// TTL of the per-AOR `version` cell after a commit: it must outlive every
/// live binding of the AOR (so a writer holding an old version can never
/// match a lapsed one while bindings remain), and may lapse with the last.
pub fn version_ttl_secs(bindings: &[Binding], now: SystemTime) -> i32 {
    bindings
        .iter()
        .map(|b| ttl_secs(b.expires_at, now))
        .max()
        .unwrap_or(1)
}

pub fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn text(value: &Option<String>) -> Option<CqlValue> {
    value.clone().map(CqlValue::Text)
}

/// Bound values of the prepared INSERT: `aor, binding_key, columns..., ttl`.
pub fn insert_values(aor: &str, binding: &Binding, now: SystemTime) -> Vec<Option<CqlValue>> {
    vec![
        Some(CqlValue::Text(aor.to_owned())),
        Some(CqlValue::Text(binding_key_text(&binding.key()))),
        Some(CqlValue::Text(binding.contact.clone())),
        Some(CqlValue::Text(binding.contact_key.clone())),
        text(&binding.instance),
        binding.reg_id.map(|r| CqlValue::BigInt(r.into())),
        binding.q.map(|q| CqlValue::Int(q.into())),
        Some(CqlValue::List(
            binding.path.iter().cloned().map(CqlValue::Text).collect(),
        )),
        Some(CqlValue::Text(binding.call_id.clone())),
        Some(CqlValue::BigInt(binding.cseq.into())),
        Some(CqlValue::Timestamp(CqlTimestamp(millis(
            binding.expires_at,
        )))),
        Some(CqlValue::Timestamp(CqlTimestamp(millis(
            binding.registered_at,
        )))),
        Some(CqlValue::Text(binding.source.transport.as_str().to_owned())),
        Some(CqlValue::Text(binding.source.remote.to_string())),
        Some(CqlValue::Text(binding.source.local.to_string())),
        text(&binding.node),
        text(&binding.user_agent),
        Some(CqlValue::Int(ttl_secs(binding.expires_at, now))),
    ]
}

/// Bound values of the prepared DELETE.
pub fn delete_values(aor: &str, key: &BindingKey) -> Vec<Option<CqlValue>> {
    vec![
        Some(CqlValue::Text(aor.to_owned())),
        Some(CqlValue::Text(binding_key_text(key))),
    ]
}

/// Bound values of the LWT guard of a commit: `ttl, new_version, aor` and,
/// when the AOR had a version, `expected` (for `... IF version = ?`;
/// otherwise the statement is `... IF version = null`).
pub fn guard_values(
    aor: &str,
    expected: Option<i64>,
    version: i64,
    version_ttl: i32,
) -> Vec<Option<CqlValue>> {
    let mut values = vec![
        Some(CqlValue::Int(version_ttl)),
        Some(CqlValue::BigInt(version)),
        Some(CqlValue::Text(aor.to_owned())),
    ];
    if let Some(expected) = expected {
        values.push(Some(CqlValue::BigInt(expected)));
    }
    values
}

/// What one SELECT of an AOR partition returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AorRows {
    /// The static commit counter (`None`: never written or lapsed).
    pub version: Option<i64>,
    pub bindings: Vec<Binding>,
}

/// A row the schema cannot have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad bindings row: column {column}: {problem}")]
pub struct RowError {
    pub column: &'static str,
    pub problem: String,
}

fn bad(column: &'static str, problem: impl Into<String>) -> RowError {
    RowError {
        column,
        problem: problem.into(),
    }
}

/// Reads the SELECT result (`binding_key, version, BINDING_COLUMNS...`).
/// A partition holding only its static `version` comes back as one row with
/// a null `binding_key`: it yields the version and no binding.
pub fn parse_rows(rows: Vec<Row>) -> Result<AorRows, RowError> {
    let mut out = AorRows::default();
    for row in rows {
        let columns = row.columns;
        if columns.len() != 17 {
            return Err(bad("*", format!("{} columns, expected 17", columns.len())));
        }
        if let Some(value) = &columns[1] {
            out.version = Some(bigint(value, "version")?);
        }
        if columns[0].is_none() {
            continue;
        }
        out.bindings.push(binding_from_columns(&columns[2..])?);
    }
    Ok(out)
}

fn bigint(value: &CqlValue, column: &'static str) -> Result<i64, RowError> {
    match value {
        CqlValue::BigInt(v) => Ok(*v),
        other => Err(bad(column, format!("expected bigint, got {other:?}"))),
    }
}

fn opt_text(value: &Option<CqlValue>, column: &'static str) -> Result<Option<String>, RowError> {
    match value {
        None => Ok(None),
        Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(column, format!("expected text, got {other:?}"))),
    }
}

fn req_text(value: &Option<CqlValue>, column: &'static str) -> Result<String, RowError> {
    opt_text(value, column)?.ok_or_else(|| bad(column, "null"))
}

fn timestamp(value: &Option<CqlValue>, column: &'static str) -> Result<SystemTime, RowError> {
    match value {
        Some(CqlValue::Timestamp(CqlTimestamp(ms))) => Ok(from_millis(*ms)),
        other => Err(bad(column, format!("expected timestamp, got {other:?}"))),
    }
}

fn ranged<T: TryFrom<i64>>(value: i64, column: &'static str) -> Result<T, RowError> {
    T::try_from(value).map_err(|_| bad(column, format!("{value} out of range")))
}

/// One binding from its columns in [`BINDING_COLUMNS`](crate::schema::BINDING_COLUMNS) order.
pub fn binding_from_columns(c: &[Option<CqlValue>]) -> Result<Binding, RowError> {
    let reg_id = match &c[3] {
        None => None,
        Some(v) => Some(ranged::<u32>(bigint(v, "reg_id")?, "reg_id")?),
    };
    let q = match &c[4] {
        None => None,
        Some(CqlValue::Int(v)) => Some(ranged::<u16>((*v).into(), "q")?),
        Some(other) => return Err(bad("q", format!("expected int, got {other:?}"))),
    };
    let path = match &c[5] {
        // CQL stores an empty collection as null.
        None => Vec::new(),
        Some(CqlValue::List(items)) => items
            .iter()
            .map(|item| match item {
                CqlValue::Text(s) => Ok(s.clone()),
                other => Err(bad("path", format!("expected text, got {other:?}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad("path", format!("expected list, got {other:?}"))),
    };
    let cseq = match &c[7] {
        Some(v) => ranged::<u32>(bigint(v, "cseq")?, "cseq")?,
        None => return Err(bad("cseq", "null")),
    };
    let transport_text = req_text(&c[10], "transport")?;
    let transport = Transport::from_token(&transport_text)
        .ok_or_else(|| bad("transport", transport_text.clone()))?;
    let addr = |i: usize, column: &'static str| {
        let text = req_text(&c[i], column)?;
        text.parse().map_err(|_| bad(column, text))
    };
    Ok(Binding {
        contact: req_text(&c[0], "contact")?,
        contact_key: req_text(&c[1], "contact_key")?,
        instance: opt_text(&c[2], "instance")?,
        reg_id,
        q,
        path,
        call_id: req_text(&c[6], "call_id")?,
        cseq,
        expires_at: timestamp(&c[8], "expires_at")?,
        registered_at: timestamp(&c[9], "registered_at")?,
        source: Source {
            transport,
            remote: addr(11, "remote")?,
            local: addr(12, "local")?,
        },
        node: opt_text(&c[13], "node")?,
        user_agent: opt_text(&c[14], "user_agent")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_location::conformance::sample_binding;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// The SELECT row the store would read back after an INSERT.
    fn row_for(binding: &Binding, version: Option<i64>) -> Row {
        let values = insert_values("alice@sip.test", binding, now());
        let mut columns = vec![values[1].clone(), version.map(CqlValue::BigInt)];
        columns.extend(values[2..values.len() - 1].iter().cloned());
        Row { columns }
    }

    fn full_binding() -> Binding {
        let mut b = sample_binding("sip:a@127.0.0.1;transport=tcp", now());
        b.instance = Some("<urn:uuid:ABC>".into());
        b.reg_id = Some(u32::MAX);
        b.q = Some(500);
        b.path = vec!["<sip:p1.test;lr>".into(), "<sip:p2.test;lr>".into()];
        b.cseq = u32::MAX;
        b.node = Some("node-1".into());
        b.user_agent = Some("ua/1.0".into());
        b.source.transport = Transport::Tcp;
        b.source.remote = "[2001:db8::1]:5070".parse().unwrap();
        b.registered_at = now() - Duration::from_millis(1500);
        b
    }

    #[test]
    fn every_field_round_trips() {
        for binding in [full_binding(), sample_binding("sip:b@127.0.0.1", now())] {
            let parsed = parse_rows(vec![row_for(&binding, Some(7))]).unwrap();
            assert_eq!(parsed.version, Some(7));
            assert_eq!(parsed.bindings, vec![binding]);
        }
    }

    #[test]
    fn insert_values_are_exact() {
        let b = full_binding();
        let values = insert_values("alice@sip.test", &b, now());
        assert_eq!(values.len(), 2 + crate::schema::BINDING_COLUMNS.len() + 1);
        assert_eq!(values[0], Some(CqlValue::Text("alice@sip.test".into())));
        assert_eq!(
            values[1],
            Some(CqlValue::Text("i:<urn:uuid:abc>;reg-id=4294967295".into()))
        );
        assert_eq!(values[5], Some(CqlValue::BigInt(4_294_967_295)));
        assert_eq!(values[6], Some(CqlValue::Int(500)));
        assert_eq!(values[12], Some(CqlValue::Text("TCP".into())));
        assert_eq!(
            values[13],
            Some(CqlValue::Text("[2001:db8::1]:5070".into()))
        );
        assert_eq!(values[16], Some(CqlValue::Text("ua/1.0".into())));
        assert_eq!(
            values[17],
            Some(CqlValue::Int(3600)),
            "TTL = remaining seconds"
        );
        let plain = insert_values("a", &sample_binding("sip:b@h", now()), now());
        assert_eq!(plain[1], Some(CqlValue::Text("c:sip:b@h".into())));
        assert_eq!(
            (plain[4].clone(), plain[5].clone(), plain[6].clone()),
            (None, None, None)
        );
        assert_eq!(plain[7], Some(CqlValue::List(vec![])));
    }

    #[test]
    fn static_only_partition_yields_version_without_bindings() {
        let mut columns = vec![None, Some(CqlValue::BigInt(3))];
        columns.resize(17, None);
        let parsed = parse_rows(vec![Row { columns }]).unwrap();
        assert_eq!(
            parsed,
            AorRows {
                version: Some(3),
                bindings: vec![]
            }
        );
        assert_eq!(parse_rows(vec![]).unwrap(), AorRows::default());
    }

    #[test]
    fn null_path_is_empty_and_bad_rows_are_errors() {
        let binding = sample_binding("sip:b@h", now());
        let mut row = row_for(&binding, None);
        row.columns[7] = None;
        assert_eq!(
            parse_rows(vec![row]).unwrap().bindings[0].path,
            Vec::<String>::new()
        );
        let mut row = row_for(&binding, None);
        row.columns[9] = Some(CqlValue::BigInt(-1));
        assert_eq!(parse_rows(vec![row]).unwrap_err().column, "cseq");
        let mut row = row_for(&binding, None);
        row.columns[12] = Some(CqlValue::Text("SCTP".into()));
        assert_eq!(parse_rows(vec![row]).unwrap_err().column, "transport");
        let mut row = row_for(&binding, None);
        row.columns.pop();
        assert!(parse_rows(vec![row]).is_err());
    }

    #[test]
    fn guard_values_match_the_statements() {
        let bump = guard_values("a@h", Some(4), 5, 60);
        assert_eq!(
            bump,
            vec![
                Some(CqlValue::Int(60)),
                Some(CqlValue::BigInt(5)),
                Some(CqlValue::Text("a@h".into())),
                Some(CqlValue::BigInt(4)),
            ]
        );
        let statements = crate::schema::Statements::new("ks");
        assert_eq!(statements.bump_version.matches('?').count(), bump.len());
        let init = guard_values("a@h", None, 1, 60);
        assert_eq!(statements.init_version.matches('?').count(), init.len());
        assert_eq!(init[1], Some(CqlValue::BigInt(1)));
        let delete = delete_values("a@h", &BindingKey::Contact("sip:x@y".into()));
        assert_eq!(statements.delete.matches('?').count(), delete.len());
        assert_eq!(delete[1], Some(CqlValue::Text("c:sip:x@y".into())));
    }

    #[test]
    fn key_text_keeps_instance_and_contact_apart() {
        assert_eq!(
            binding_key_text(&BindingKey::instance("<urn:X>", None)),
            "i:<urn:x>"
        );
        assert_eq!(
            binding_key_text(&BindingKey::Contact("sip:a@h".into())),
            "c:sip:a@h"
        );
    }

    #[test]
    fn ttl_rounds_up_and_never_reaches_zero() {
        let t = now();
        assert_eq!(ttl_secs(t + Duration::from_secs(60), t), 60);
        assert_eq!(ttl_secs(t + Duration::from_millis(59_001), t), 60);
        assert_eq!(ttl_secs(t + Duration::from_millis(1), t), 1);
        assert_eq!(ttl_secs(t, t), 1);
        assert_eq!(ttl_secs(t - Duration::from_secs(5), t), 1);
        assert_eq!(
            ttl_secs(t + Duration::from_secs(u64::from(u32::MAX)), t),
            MAX_TTL_SECS
        );
        let mut a = sample_binding("sip:a@h", t);
        a.expires_at = t + Duration::from_secs(30);
        let b = sample_binding("sip:b@h", t);
        assert_eq!(version_ttl_secs(&[a, b], t), 3600);
        assert_eq!(version_ttl_secs(&[], t), 1);
    }

    #[test]
    fn millis_round_trip_both_sides_of_the_epoch() {
        for ms in [0_i64, 1, 1_700_000_000_123, -5] {
            assert_eq!(millis(from_millis(ms)), ms);
        }
    }
}
