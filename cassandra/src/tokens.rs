//! Offset-mirror initial token planning for single-token (`num_tokens: 1`)
//! Cassandra rings spanning several data centres.
//!
//! Each DC is balanced as if it were the whole ring: node `i` of a DC with
//! `n` nodes gets `min + floor(i × range / n)`. The DC at position `d`
//! (0-based, in the order given) is then shifted by `+d`, so that no two
//! nodes anywhere share a token while every DC still owns an even share of
//! its own replicas (NetworkTopologyStrategy places replicas per DC).
//!
//! Pure computation, no I/O; `switchyard cassandra tokens` prints
//! [`render`]'s output.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// The ring's partitioner, which fixes the token range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// `RandomPartitioner`: tokens in `0 .. 2^127`. The default here, as in
    /// the seed's figures.
    #[default]
    Random,
    /// `Murmur3Partitioner` (Cassandra ≥ 1.2 default): tokens in
    /// `-2^63 ..= 2^63 - 1`.
    Murmur3,
}

impl Partitioner {
    /// Smallest token.
    pub fn min_token(self) -> i128 {
        match self {
            Partitioner::Random => 0,
            Partitioner::Murmur3 => i128::from(i64::MIN),
        }
    }

    /// Largest token.
    pub fn max_token(self) -> i128 {
        match self {
            Partitioner::Random => i128::MAX, // 2^127 - 1
            Partitioner::Murmur3 => i128::from(i64::MAX),
        }
    }

    /// Number of distinct tokens (`2^127` or `2^64`).
    pub fn range(self) -> u128 {
        match self {
            Partitioner::Random => 1u128 << 127,
            Partitioner::Murmur3 => 1u128 << 64,
        }
    }

    /// The Java class name, as written in `cassandra.yaml`.
    pub fn class_name(self) -> &'static str {
        match self {
            Partitioner::Random => "org.apache.cassandra.dht.RandomPartitioner",
            Partitioner::Murmur3 => "org.apache.cassandra.dht.Murmur3Partitioner",
        }
    }

    /// The short name accepted on the command line.
    pub fn short_name(self) -> &'static str {
        match self {
            Partitioner::Random => "random",
            Partitioner::Murmur3 => "murmur3",
        }
    }

    fn range_text(self) -> &'static str {
        match self {
            Partitioner::Random => "0 .. 2^127",
            Partitioner::Murmur3 => "-2^63 .. 2^63-1",
        }
    }
}

impl fmt::Display for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

impl FromStr for Partitioner {
    type Err = TokenError;

    /// Accepts `random` / `murmur3` (any case), the class' simple name
    /// (`RandomPartitioner`) or its full name
    /// (`org.apache.cassandra.dht.RandomPartitioner`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let simple = t.strip_prefix("org.apache.cassandra.dht.").unwrap_or(t);
        match simple.to_ascii_lowercase().as_str() {
            "random" | "randompartitioner" => Ok(Partitioner::Random),
            "murmur3" | "murmur3partitioner" => Ok(Partitioner::Murmur3),
            _ => Err(TokenError::BadPartitioner(s.to_string())),
        }
    }
}

/// Why a DC specification or a set of them was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the form `NAME=NODES`.
    BadSpec { spec: String, reason: String },
    /// A DC with no nodes.
    ZeroNodes(String),
    /// The same DC given twice.
    DuplicateDc(String),
    /// No DC given at all.
    NoDcs,
    /// Unknown partitioner name.
    BadPartitioner(String),
    /// More DCs than the token spacing leaves room for (offsets would collide).
    TooManyDcs { dcs: usize, spacing: u128 },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::BadSpec { spec, reason } => {
                write!(
                    f,
                    "bad DC spec {spec:?}: {reason} (expected NAME=NODES, e.g. DC0=2)"
                )
            }
            TokenError::ZeroNodes(name) => {
                write!(f, "DC {name:?} has 0 nodes; it needs at least 1")
            }
            TokenError::DuplicateDc(name) => write!(f, "DC {name:?} is given more than once"),
            TokenError::NoDcs => f.write_str("no DC given (use --dc NAME=NODES, repeatable)"),
            TokenError::BadPartitioner(p) => {
                write!(f, "unknown partitioner {p:?} (expected random or murmur3)")
            }
            TokenError::TooManyDcs { dcs, spacing } => write!(
                f,
                "{dcs} DCs but only {spacing} tokens between neighbouring nodes: offsets would collide"
            ),
        }
    }
}

impl std::error::Error for TokenError {}

/// One data centre and its node count, parsed from `NAME=NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcSpec {
    pub name: String,
    pub nodes: u32,
}

impl FromStr for DcSpec {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| TokenError::BadSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, nodes) = s.split_once('=').ok_or_else(|| bad("missing '='"))?;
        let name = name.trim();
        let nodes = nodes.trim();
        if name.is_empty() {
            return Err(bad("empty DC name"));
        }
        // Names end up in cassandra-topology.properties (`addr=DC:RACK`) and
        // in the keyspace's replication map: keep them to safe characters.
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(bad(&format!(
                "DC name may only hold letters, digits, '_', '-', '.' (found {c:?})"
            )));
        }
        if nodes.is_empty() {
            return Err(bad("missing node count"));
        }
        if !nodes.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("node count {nodes:?} is not a whole number")));
        }
        let nodes: u32 = nodes
            .parse()
            .map_err(|_| bad(&format!("node count {nodes:?} is too large")))?;
        if nodes == 0 {
            return Err(TokenError::ZeroNodes(name.to_string()));
        }
        Ok(DcSpec {
            name: name.to_string(),
            nodes,
        })
    }
}

/// Parses every `NAME=NODES` and [`validate`]s the set.
pub fn parse_dcs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<DcSpec>, TokenError> {
    let dcs = specs
        .iter()
        .map(|s| s.as_ref().parse())
        .collect::<Result<Vec<DcSpec>, _>>()?;
    validate(&dcs, Partitioner::Random)?;
    Ok(dcs)
}

/// Checks a set of DCs for the given partitioner: at least one DC, none
/// empty, no name twice, and few enough DCs that the `+n` offsets stay
/// below the spacing of the densest DC (so no token is shared).
pub fn validate(dcs: &[DcSpec], p: Partitioner) -> Result<(), TokenError> {
    if dcs.is_empty() {
        return Err(TokenError::NoDcs);
    }
    let mut seen = HashSet::new();
    for dc in dcs {
        if dc.nodes == 0 {
            return Err(TokenError::ZeroNodes(dc.name.clone()));
        }
        if !seen.insert(dc.name.as_str()) {
            return Err(TokenError::DuplicateDc(dc.name.clone()));
        }
    }
    let densest = dcs.iter().map(|d| d.nodes).max().unwrap_or(1);
    let spacing = p.range() / u128::from(densest);
    if dcs.len() as u128 > spacing {
        return Err(TokenError::TooManyDcs {
            dcs: dcs.len(),
            spacing,
        });
    }
    Ok(())
}

/// One DC's planned tokens, node 0 first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcTokens {
    pub name: String,
    pub tokens: Vec<i128>,
}

/// `floor(i × range / n)` without overflowing `u128` (`i × 2^127` would):
/// with `range = q·n + r`, it is `i·q + floor(i·r / n)`, and `i·r < 2^64`.
fn share(i: u32, n: u32, range: u128) -> u128 {
    let (i, n) = (u128::from(i), u128::from(n));
    let (q, r) = (range / n, range % n);
    i * q + (i * r) / n
}

/// Offset-mirror plan: DC `d` (0-based, in the given order) gets, for node
/// `i` of `n`, `min + (floor(i × range / n) + d) mod range`. Infallible; a
/// DC with 0 nodes gets no tokens. Run [`validate`] first to refuse
/// duplicates and collisions.
pub fn plan(dcs: &[DcSpec], p: Partitioner) -> Vec<DcTokens> {
    let range = p.range();
    dcs.iter()
        .enumerate()
        .map(|(d, dc)| DcTokens {
            name: dc.name.clone(),
            tokens: (0..dc.nodes)
                .map(|i| {
                    let offset = (share(i, dc.nodes, range) + d as u128) % range;
                    // offset < 2^127, so it fits an i128; min + offset <= max.
                    p.min_token() + offset as i128
                })
                .collect(),
        })
        .collect()
}

/// Placeholder address for the `k`-th node overall (0-based): 127.0.1.1,
/// 127.0.1.2, …, 127.0.1.254, 127.0.2.1, … Examples only.
fn placeholder_addr(k: u64) -> String {
    let c = 1 + k % 254;
    let rest = k / 254;
    let b = 1 + rest % 255;
    let a = (rest / 255) % 256;
    format!("127.{a}.{b}.{c}")
}

/// Human-readable plan: one `DC node token` line per node, a
/// `cassandra-topology.properties` snippet for PropertyFileSnitch and a note
/// on vnodes.
pub fn render(plan: &[DcTokens], p: Partitioner) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name_w = plan
        .iter()
        .map(|d| d.name.len())
        .chain(std::iter::once(2))
        .max()
        .unwrap_or(2);
    let node_w = plan
        .iter()
        .map(|d| d.tokens.len().saturating_sub(1).to_string().len())
        .chain(std::iter::once(4))
        .max()
        .unwrap_or(4);

    // `write!` into a String cannot fail.
    let _ = writeln!(
        out,
        "# Offset-mirror initial tokens, {} ({})",
        p.class_name(),
        p.range_text()
    );
    let _ = writeln!(
        out,
        "# Each DC is balanced as if it were the whole ring (token = min + node x range / nodes);"
    );
    let _ = writeln!(
        out,
        "# the n-th DC (from 0) is offset by +n so no two nodes share a token."
    );
    let _ = writeln!(
        out,
        "# Set on each node in cassandra.yaml: num_tokens: 1, initial_token: <token>,"
    );
    let _ = writeln!(out, "# partitioner: {}", p.class_name());
    let _ = writeln!(out, "{:<name_w$}  {:>node_w$}  token", "DC", "node");
    for dc in plan {
        for (i, t) in dc.tokens.iter().enumerate() {
            let _ = writeln!(out, "{:<name_w$}  {:>node_w$}  {t}", dc.name, i);
        }
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# cassandra-topology.properties (endpoint_snitch: PropertyFileSnitch), same file on every node."
    );
    let _ = writeln!(
        out,
        "# The 127.0.1.x addresses are placeholders: replace each with that node's real address"
    );
    let _ = writeln!(
        out,
        "# (the one it gossips on), in the same order as the tokens above."
    );
    let mut k: u64 = 0;
    for dc in plan {
        for (i, t) in dc.tokens.iter().enumerate() {
            // Comments must be whole lines: in a .properties file a `#`
            // after the value would become part of the rack name.
            let _ = writeln!(out, "# {} node {i}, initial_token {t}", dc.name);
            let _ = writeln!(out, "{}={}:RAC1", placeholder_addr(k), dc.name);
            k += 1;
        }
    }
    if let Some(first) = plan.first() {
        let _ = writeln!(out, "# Nodes not listed above:");
        let _ = writeln!(out, "default={}:RAC1", first.name);
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# Modern clusters (Cassandra >= 4.0) use vnodes instead of initial_token:"
    );
    let _ = writeln!(
        out,
        "#   num_tokens: 16 (the 4.0 default; fewer tokens per node keeps repair and streaming cheap)"
    );
    let _ = writeln!(
        out,
        "#   allocate_tokens_for_local_replication_factor: 3 (the DC's replication factor;"
    );
    let _ = writeln!(
        out,
        "#   the allocator then places each new node's tokens to balance ownership in its DC)"
    );
    let _ = writeln!(
        out,
        "# and GossipingPropertyFileSnitch with dc=/rack= in cassandra-rackdc.properties."
    );
    let _ = writeln!(
        out,
        "# Leave initial_token unset then; the tokens above are for num_tokens: 1 rings."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dcs(specs: &[&str]) -> Vec<DcSpec> {
        parse_dcs(specs).expect("valid specs")
    }

    #[test]
    fn random_two_dcs_of_two_gives_the_seed_figures() {
        let p = plan(&dcs(&["DC0=2", "DC1=2"]), Partitioner::Random);
        assert_eq!(
            p,
            vec![
                DcTokens {
                    name: "DC0".into(),
                    tokens: vec![0, 85070591730234615865843651857942052864],
                },
                DcTokens {
                    name: "DC1".into(),
                    tokens: vec![1, 85070591730234615865843651857942052865],
                },
            ]
        );
        assert_eq!(85070591730234615865843651857942052864i128, 1i128 << 126);
    }

    #[test]
    fn random_render_prints_the_seed_figures_per_node() {
        let p = Partitioner::Random;
        let text = render(&plan(&dcs(&["DC0=2", "DC1=2"]), p), p);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("DC") && !l.starts_with("DC "))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec!["DC0", "0", "0"],
                vec!["DC0", "1", "85070591730234615865843651857942052864"],
                vec!["DC1", "0", "1"],
                vec!["DC1", "1", "85070591730234615865843651857942052865"],
            ],
            "{text}"
        );
        assert!(text.contains("org.apache.cassandra.dht.RandomPartitioner"));
    }

    #[test]
    fn murmur3_one_dc_of_four() {
        let p = plan(&dcs(&["dc1=4"]), Partitioner::Murmur3);
        assert_eq!(
            p[0].tokens,
            vec![
                -9223372036854775808,
                -4611686018427387904,
                0,
                4611686018427387904
            ]
        );
    }

    #[test]
    fn murmur3_second_and_third_dc_are_offset() {
        let p = plan(&dcs(&["east=4", "west=4", "south=2"]), Partitioner::Murmur3);
        assert_eq!(
            p[1].tokens,
            vec![
                -9223372036854775807,
                -4611686018427387903,
                1,
                4611686018427387905
            ]
        );
        assert_eq!(p[2].tokens, vec![-9223372036854775806, 2]);
    }

    #[test]
    fn murmur3_two_dcs_of_two() {
        let p = plan(&dcs(&["DC0=2", "DC1=2"]), Partitioner::Murmur3);
        assert_eq!(p[0].tokens, vec![i128::from(i64::MIN), 0]);
        assert_eq!(p[1].tokens, vec![i128::from(i64::MIN) + 1, 1]);
    }

    #[test]
    fn uneven_sizes_use_floor_of_index_times_range_over_nodes() {
        let p = plan(&dcs(&["a=3", "b=1"]), Partitioner::Random);
        let r = 1u128 << 127;
        assert_eq!(
            p[0].tokens,
            vec![
                0,
                (r / 3) as i128,
                (2 * (r / 3) + (2 * (r % 3)) / 3) as i128
            ]
        );
        // floor(2 * 2^127 / 3), computed without overflow.
        assert_eq!(p[0].tokens[2], 113427455640312821154458202477256070485);
        assert_eq!(p[1].tokens, vec![1]);

        let m = plan(&dcs(&["a=3"]), Partitioner::Murmur3);
        assert_eq!(
            m[0].tokens,
            vec![
                -9223372036854775808,
                -3074457345618258603,
                3074457345618258602
            ]
        );
    }

    #[test]
    fn tokens_are_unique_sorted_within_a_dc_and_in_range() {
        for p in [Partitioner::Random, Partitioner::Murmur3] {
            let set = dcs(&["a=1", "b=2", "c=3", "d=5", "e=7", "f=12", "g=1000"]);
            let planned = plan(&set, p);
            let mut all = HashSet::new();
            for (dc, spec) in planned.iter().zip(&set) {
                assert_eq!(dc.tokens.len(), spec.nodes as usize);
                assert!(dc.tokens.windows(2).all(|w| w[0] < w[1]));
                for &t in &dc.tokens {
                    assert!(
                        t >= p.min_token() && t <= p.max_token(),
                        "{t} out of range for {p}"
                    );
                    assert!(all.insert(t), "token {t} shared ({p})");
                }
            }
        }
    }

    #[test]
    fn largest_node_count_stays_in_range() {
        let set = vec![
            DcSpec {
                name: "x".into(),
                nodes: u32::MAX,
            },
            DcSpec {
                name: "y".into(),
                nodes: 1,
            },
        ];
        for p in [Partitioner::Random, Partitioner::Murmur3] {
            validate(&set, p).unwrap();
            // Only the last node's token matters; don't build 4 billion of them.
            let last = share(u32::MAX - 1, u32::MAX, p.range());
            assert!(last < p.range());
            assert!(p.min_token() + (last as i128) < p.max_token());
        }
    }

    #[test]
    fn dc_spec_parses() {
        assert_eq!(
            "DC0=2".parse::<DcSpec>(),
            Ok(DcSpec {
                name: "DC0".into(),
                nodes: 2
            })
        );
        assert_eq!(
            " us-east_1.a = 12 ".parse::<DcSpec>(),
            Ok(DcSpec {
                name: "us-east_1.a".into(),
                nodes: 12
            })
        );
    }

    #[test]
    fn zero_nodes_is_refused() {
        assert_eq!(
            "DC0=0".parse::<DcSpec>(),
            Err(TokenError::ZeroNodes("DC0".into()))
        );
        let direct = [DcSpec {
            name: "DC0".into(),
            nodes: 0,
        }];
        assert_eq!(
            validate(&direct, Partitioner::Random),
            Err(TokenError::ZeroNodes("DC0".into()))
        );
        assert!(plan(&direct, Partitioner::Random)[0].tokens.is_empty());
        let msg = "DC0=0".parse::<DcSpec>().unwrap_err().to_string();
        assert!(msg.contains("0 nodes"), "{msg}");
    }

    #[test]
    fn bad_specs_are_refused_with_a_clear_message() {
        for spec in [
            "",
            "DC0",
            "DC0:2",
            "=2",
            "DC0=",
            "DC0=two",
            "DC0=-1",
            "DC0=2.5",
            "DC0=1=2",
            "D C=1",
            "DC:0=1",
            "DC0=99999999999",
        ] {
            let err = spec.parse::<DcSpec>().unwrap_err();
            assert!(
                matches!(err, TokenError::BadSpec { .. }),
                "{spec:?}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("NAME=NODES"), "{spec:?}: {msg}");
            assert!(msg.contains(&format!("{spec:?}")), "{spec:?}: {msg}");
        }
    }

    #[test]
    fn duplicate_dc_names_are_refused() {
        assert_eq!(
            parse_dcs(&["DC0=2", "DC1=2", "DC0=3"]),
            Err(TokenError::DuplicateDc("DC0".into()))
        );
        // Cassandra DC names are case-sensitive: these are two DCs.
        assert!(parse_dcs(&["dc0=1", "DC0=1"]).is_ok());
        assert!(
            TokenError::DuplicateDc("DC0".into())
                .to_string()
                .contains("more than once")
        );
    }

    #[test]
    fn no_dcs_is_refused() {
        assert_eq!(parse_dcs::<&str>(&[]), Err(TokenError::NoDcs));
    }

    #[test]
    fn too_many_dcs_for_the_spacing_is_refused() {
        // Murmur3 with 2^32 - 1 nodes leaves a spacing of 2^32 + 1 tokens:
        // fine for any real number of DCs; a tiny fake ring shows the check.
        let set: Vec<DcSpec> = (0..3)
            .map(|i| DcSpec {
                name: format!("d{i}"),
                nodes: u32::MAX,
            })
            .collect();
        assert!(validate(&set, Partitioner::Murmur3).is_ok());
        let err = TokenError::TooManyDcs { dcs: 3, spacing: 2 };
        assert!(err.to_string().contains("collide"));
    }

    #[test]
    fn partitioner_names() {
        for (s, p) in [
            ("random", Partitioner::Random),
            ("Random", Partitioner::Random),
            ("RandomPartitioner", Partitioner::Random),
            (
                "org.apache.cassandra.dht.RandomPartitioner",
                Partitioner::Random,
            ),
            ("murmur3", Partitioner::Murmur3),
            ("MURMUR3", Partitioner::Murmur3),
            ("Murmur3Partitioner", Partitioner::Murmur3),
            (
                "org.apache.cassandra.dht.Murmur3Partitioner",
                Partitioner::Murmur3,
            ),
        ] {
            assert_eq!(s.parse::<Partitioner>(), Ok(p), "{s}");
        }
        assert_eq!(
            "bytes".parse::<Partitioner>(),
            Err(TokenError::BadPartitioner("bytes".into()))
        );
        assert_eq!(Partitioner::default(), Partitioner::Random);
        assert_eq!(
            Partitioner::Murmur3.to_string().parse(),
            Ok(Partitioner::Murmur3)
        );
        assert_eq!(Partitioner::Random.max_token(), i128::MAX);
        assert_eq!(Partitioner::Murmur3.max_token(), 9223372036854775807);
    }

    #[test]
    fn render_has_topology_snippet_and_vnode_note() {
        let p = Partitioner::Murmur3;
        let text = render(&plan(&dcs(&["DC0=2", "DC1=2"]), p), p);
        for line in [
            "127.0.1.1=DC0:RAC1",
            "127.0.1.2=DC0:RAC1",
            "127.0.1.3=DC1:RAC1",
            "127.0.1.4=DC1:RAC1",
            "default=DC0:RAC1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.contains("PropertyFileSnitch"));
        assert!(text.contains("placeholders"));
        assert!(text.contains("num_tokens"));
        assert!(text.contains("allocate_tokens_for_local_replication_factor"));
        assert!(text.contains("org.apache.cassandra.dht.Murmur3Partitioner"));
        assert!(
            text.contains("# DC1 node 1, initial_token 1\n127.0.1.4=DC1:RAC1\n"),
            "{text}"
        );
        // Property lines are exactly `addr=DC:RACK`: no trailing comment,
        // which Java's Properties would keep as part of the rack name.
        for line in text.lines().filter(|l| l.starts_with("127.")) {
            let (_, value) = line.split_once('=').unwrap();
            assert!(!value.contains('#') && !value.ends_with(' '), "{line}");
        }
    }

    #[test]
    fn placeholder_addresses_stay_distinct_past_254_nodes() {
        assert_eq!(placeholder_addr(0), "127.0.1.1");
        assert_eq!(placeholder_addr(253), "127.0.1.254");
        assert_eq!(placeholder_addr(254), "127.0.2.1");
        let addrs: HashSet<String> = (0..100_000).map(placeholder_addr).collect();
        assert_eq!(addrs.len(), 100_000);
    }
}
