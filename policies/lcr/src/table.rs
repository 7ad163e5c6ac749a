//! The rate table: configuration, validation, number normalization and
//! longest-prefix match. Pure: no host calls.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_policy::{Scheme, Target, Uri};

/// The `config` table of an LCR tenant (see README.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LcrConfig {
    /// Carrier name → carrier.
    pub carriers: BTreeMap<String, CarrierConfig>,
    /// Dialled-number prefix (digits, `""` for the default route) → the
    /// carriers to try, in order.
    pub prefixes: BTreeMap<String, Vec<RouteEntry>>,
    /// What to do with an INVITE whose Request-URI user is not a number.
    #[serde(default)]
    pub non_numeric: NonNumeric,
}

/// One carrier (an egress gateway).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// The gateway as a SIP URI without user part, e.g. `sip:127.0.0.1:5070`
    /// or `sip:gw.carrier.example;transport=tcp`. Its scheme, host, port and
    /// parameters are kept; the dialled number becomes the user part.
    pub gateway: String,
    /// Route set pushed before forwarding (e.g. an SBC: `<sip:sbc.example;lr>`).
    #[serde(default)]
    pub route: Vec<String>,
    /// No-answer timeout of this carrier's attempt in ms (0: Timer C only).
    #[serde(default)]
    pub timeout_ms: u32,
    /// Digits put in front of the number (a carrier's tech prefix).
    #[serde(default)]
    pub tech_prefix: String,
}

/// A carrier in a prefix's list: its name, or its name and a cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteEntry {
    /// Tried in the written order.
    Name(String),
    /// With a cost per minute: when every entry of a prefix has a cost,
    /// the cheapest is tried first.
    Priced {
        /// Carrier name.
        carrier: String,
        /// Cost (any unit, compared only).
        cost: f64,
    },
}

/// Handling of Request-URI users that are not phone numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonNumeric {
    /// Default routing (e.g. calls to `sip:alice@...` registered users).
    #[default]
    Proceed,
    /// 404.
    Reject,
}

/// A carrier, ready to build targets.
#[derive(Debug, Clone)]
pub struct Carrier {
    /// Its name in the configuration.
    pub name: String,
    /// `sip` or `sips`.
    scheme: &'static str,
    /// `host[:port][;params]` of the gateway.
    host_part: String,
    route: Vec<String>,
    tech_prefix: String,
    /// No-answer timeout in ms.
    pub timeout_ms: u32,
}

impl Carrier {
    /// The branch for `number` through this carrier:
    /// `sip:<tech prefix><number>@<gateway host:port;params>`.
    pub fn target(&self, number: &str) -> Target {
        Target::uri(format!(
            "{}:{}{number}@{}",
            self.scheme, self.tech_prefix, self.host_part
        ))
        .route(self.route.iter().cloned())
    }
}

/// The validated table.
#[derive(Debug)]
pub struct Table {
    /// Carriers by index.
    pub carriers: Vec<Carrier>,
    /// Prefix → carrier indexes in trial order.
    routes: BTreeMap<String, Vec<usize>>,
    /// Longest configured prefix (bounds the match loop).
    longest: usize,
    /// Non-numeric handling.
    pub non_numeric: NonNumeric,
}

impl Table {
    /// Validates the configuration: gateways are SIP URIs without user
    /// part, prefixes are digits, every listed carrier exists.
    pub fn new(config: LcrConfig) -> Result<Table, String> {
        let mut index = BTreeMap::new();
        let mut carriers = Vec::new();
        for (name, c) in &config.carriers {
            let uri = Uri::parse(&c.gateway)
                .map_err(|e| format!("carrier {name}: gateway {:?}: {e}", c.gateway))?;
            let scheme = match uri.scheme {
                Scheme::Sip => "sip",
                Scheme::Sips => "sips",
                _ => {
                    return Err(format!(
                        "carrier {name}: gateway {:?} is not a sip: or sips: URI",
                        c.gateway
                    ));
                }
            };
            if uri.user.is_some() || uri.headers.is_some() {
                return Err(format!(
                    "carrier {name}: gateway {:?} must have no user part or headers (the number goes there)",
                    c.gateway
                ));
            }
            if !c
                .tech_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'#' || b == b'*')
            {
                return Err(format!(
                    "carrier {name}: tech_prefix {:?} may hold only digits, letters, # and *",
                    c.tech_prefix
                ));
            }
            let port = uri.port.map(|p| format!(":{p}")).unwrap_or_default();
            index.insert(name.as_str(), carriers.len());
            carriers.push(Carrier {
                name: name.clone(),
                scheme,
                host_part: format!("{}{port}{}", uri.host, uri.params.as_str()),
                route: c.route.clone(),
                tech_prefix: c.tech_prefix.clone(),
                timeout_ms: c.timeout_ms,
            });
        }
        let mut routes = BTreeMap::new();
        for (prefix, entries) in &config.prefixes {
            if !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "prefix {prefix:?} must be digits (\"\" for the default route)"
                ));
            }
            if entries.is_empty() {
                return Err(format!("prefix {prefix:?} has no carriers"));
            }
            let mut ordered: Vec<(&str, Option<f64>)> = entries
                .iter()
                .map(|e| match e {
                    RouteEntry::Name(n) => (n.as_str(), None),
                    RouteEntry::Priced { carrier, cost } => (carrier.as_str(), Some(*cost)),
                })
                .collect();
            if ordered.iter().all(|(_, cost)| cost.is_some()) {
                ordered.sort_by(|a, b| a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)));
            }
            let list = ordered
                .iter()
                .map(|(name, _)| {
                    index
                        .get(name)
                        .copied()
                        .ok_or_else(|| format!("prefix {prefix:?}: unknown carrier {name:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            routes.insert(prefix.clone(), list);
        }
        let longest = routes.keys().map(String::len).max().unwrap_or(0);
        Ok(Table {
            carriers,
            routes,
            longest,
            non_numeric: config.non_numeric,
        })
    }

    /// Longest-prefix match: the matched prefix and its carriers in order.
    pub fn lookup<'a>(&'a self, number: &str) -> Option<(&'a str, &'a [usize])> {
        (0..=number.len().min(self.longest))
            .rev()
            .find_map(|n| self.routes.get_key_value(&number[..n]))
            .map(|(prefix, list)| (prefix.as_str(), list.as_slice()))
    }

    /// The carriers of a prefix already matched (for failover).
    pub fn carriers_of(&self, prefix: &str) -> &[usize] {
        self.routes.get(prefix).map_or(&[], Vec::as_slice)
    }
}

/// The dialled number in digits: `+` and RFC 3966 visual separators
/// (`-`, `.`, `(`, `)`, space) removed. `None` if anything else remains or
/// no digit does.
pub fn normalize_number(user: &str) -> Option<String> {
    let user = user.strip_prefix('+').unwrap_or(user);
    let mut digits = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '-' | '.' | '(' | ')' | ' ' => {}
            _ => return None,
        }
    }
    (!digits.is_empty()).then_some(digits)
}

/// Statuses after which the next carrier is tried: 408 (including the
/// proxy's local no-answer timeout) and 5xx (including its local 503 for
/// unreachable gateways). Any other 4xx, or a 6xx, is the callee's answer.
pub fn fails_over(status: u16) -> bool {
    status == 408 || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> Result<Table, String> {
        Table::new(switchyard_policy::Config::new(json).parse()?)
    }

    const RATES: &str = r#"{
        "carriers": {
            "cheap": {"gateway": "sip:127.0.0.1:5070", "timeout_ms": 8000},
            "premium": {"gateway": "sips:gw.premium.example;transport=tcp", "route": ["<sip:sbc.example;lr>"], "tech_prefix": "99"},
            "fallback": {"gateway": "sip:[2001:db8::1]:5080"}
        },
        "prefixes": {
            "1": ["cheap", "premium"],
            "1212": [{"carrier": "premium", "cost": 0.02}, {"carrier": "cheap", "cost": 0.01}],
            "44": ["premium"],
            "": ["fallback"]
        }
    }"#;

    #[test]
    fn longest_prefix_wins() {
        let t = table(RATES).unwrap();
        let names = |number: &str| {
            let (prefix, list) = t.lookup(number).unwrap();
            (
                prefix.to_owned(),
                list.iter()
                    .map(|&i| t.carriers[i].name.as_str())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            names("12125550100"),
            ("1212".into(), vec!["cheap", "premium"])
        );
        assert_eq!(names("13125550100"), ("1".into(), vec!["cheap", "premium"]));
        assert_eq!(names("447700900123"), ("44".into(), vec!["premium"]));
        assert_eq!(names("33123456789"), ("".into(), vec!["fallback"]));
        let no_default =
            table(r#"{"carriers": {"a": {"gateway": "sip:h"}}, "prefixes": {"1": ["a"]}}"#)
                .unwrap();
        assert!(no_default.lookup("44").is_none());
        assert!(no_default.lookup("1").is_some());
    }

    #[test]
    fn targets_keep_gateway_parts() {
        let t = table(RATES).unwrap();
        let by_name = |n: &str| t.carriers.iter().find(|c| c.name == n).unwrap();
        let cheap = by_name("cheap").target("15551234");
        assert_eq!(cheap.uri, "sip:15551234@127.0.0.1:5070");
        assert!(cheap.route.is_empty());
        let premium = by_name("premium").target("15551234");
        assert_eq!(
            premium.uri,
            "sips:9915551234@gw.premium.example;transport=tcp"
        );
        assert_eq!(premium.route, ["<sip:sbc.example;lr>"]);
        assert_eq!(
            by_name("fallback").target("1").uri,
            "sip:1@[2001:db8::1]:5080"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            normalize_number("+1 (212) 555-0100").as_deref(),
            Some("12125550100")
        );
        assert_eq!(
            normalize_number("0044.20.7946.0000").as_deref(),
            Some("00442079460000")
        );
        assert_eq!(normalize_number("alice"), None);
        assert_eq!(normalize_number("+"), None);
        assert_eq!(normalize_number("12*3"), None);
    }

    #[test]
    fn failover_statuses() {
        assert!(fails_over(408) && fails_over(500) && fails_over(503) && fails_over(504));
        assert!(!fails_over(404) && !fails_over(486) && !fails_over(487) && !fails_over(603));
    }

    #[test]
    fn refuses_bad_tables() {
        let err = |json| table(json).unwrap_err();
        assert!(
            err(r#"{"carriers": {"a": {"gateway": "sip:x@h"}}, "prefixes": {}}"#)
                .contains("no user part")
        );
        assert!(
            err(r#"{"carriers": {"a": {"gateway": "tel:123"}}, "prefixes": {}}"#)
                .contains("not a sip")
        );
        assert!(
            err(r#"{"carriers": {}, "prefixes": {"1": ["nope"]}}"#).contains("unknown carrier")
        );
        assert!(err(r#"{"carriers": {}, "prefixes": {"+1": []}}"#).contains("must be digits"));
        assert!(err(r#"{"carriers": {}}"#).contains("missing field `prefixes`"));
    }
}
