use super::*;

#[test]
fn empty_file_is_the_default_config() {
    let c = Config::parse("", "empty.toml").unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.listen[0].addr.port(), 5060);
    assert_eq!(c.store.backend, "embedded");
}

#[test]
fn quickstart_example_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml");
    let c = Config::load(Path::new(path)).unwrap();
    assert!(!c.domains.is_empty());
}

#[test]
fn cluster_node_example_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/cluster-node.toml");
    let c = Config::load(Path::new(path)).unwrap();
    assert_eq!(c.store.backend, "cassandra");
    assert_eq!(c.cluster_domain(), "pbx.example.test");
    assert_eq!(c.cluster.secrets().len(), 1);
}

#[test]
fn tls_webrtc_example_parses() {
    use crate::transport::tls::ClientAuth;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tls-webrtc.toml");
    let c = Config::load(Path::new(path)).unwrap();
    let transports: Vec<Transport> = c.listen.iter().map(|l| l.transport).collect();
    assert_eq!(
        transports,
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Tls,
            Transport::Wss
        ]
    );
    assert_eq!(c.tls.sni[0].domains.len(), 2);
    assert_eq!(c.tls.client_auth_for(&c.listen[2]), ClientAuth::Off);
    assert_eq!(c.tls.client_auth_for(&c.listen[3]), ClientAuth::Required);
    assert_eq!(c.websocket.path, "/sip");
    assert_eq!(c.tls.handshake_timeout_ms, 5000);
}

#[test]
fn unknown_key_is_refused_with_line_and_key() {
    let err = Config::parse("node_id = \"a\"\n[timers]\nt1 = 5\n", "bad.toml").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("bad.toml:"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("t1"), "{msg}");
}

#[test]
fn inconsistent_values_are_refused() {
    let err = Config::parse(
        "[registrar]\nmin_expires = 100\nmax_expires = 50\n",
        "x.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("min_expires"), "{err}");
    let err = Config::parse("[store]\nbackend = \"redis\"\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.backend"), "{err}");
}

#[test]
fn tcp_connection_caps_reach_the_transport_and_zero_is_refused() {
    let c = Config::parse(
        "[limits]\ntcp_max_inbound = 100\ntcp_max_outbound = 20\ntcp_max_per_source = 5\n",
        "x.toml",
    )
    .unwrap();
    let t = c.limits.transport();
    assert_eq!(
        (t.tcp_max_inbound, t.tcp_max_outbound, t.tcp_max_per_source),
        (100, 20, 5)
    );
    let err = Config::parse("[limits]\ntcp_max_per_source = 0\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.tcp_max_per_source"), "{err}");
}

#[test]
fn tenants_map_domains_and_fall_back_to_default() {
    let c = Config::parse(
        "[tenants]\ndefault = \"public\"\ndomains = { \"acme.test\" = \"acme\" }\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.tenant_of("ACME.test"), "acme");
    assert_eq!(c.tenant_of("other.test"), "public");
}

#[test]
fn wildcard_listener_advertises_loopback_unless_configured() {
    let mut c = Config::default();
    assert_eq!(
        c.advertised_for("0.0.0.0:5060".parse().unwrap()),
        "127.0.0.1:5060"
    );
    assert_eq!(
        c.advertised_for("[::1]:5070".parse().unwrap()),
        "[::1]:5070"
    );
    c.advertise = Some("pbx.test:5060".into());
    assert_eq!(
        c.advertised_for("0.0.0.0:5060".parse().unwrap()),
        "pbx.test:5060"
    );
}

#[test]
fn the_admin_endpoint_is_on_loopback_by_default_and_can_be_switched_off() {
    let c = Config::parse("", "t.toml").unwrap();
    assert_eq!(
        c.admin.listen,
        Some(crate::admin::DEFAULT_ADMIN.parse().unwrap())
    );
    let c = Config::parse("[admin]\nlisten = \"127.0.0.2:9061\"\n", "t.toml").unwrap();
    assert_eq!(c.admin.listen, Some("127.0.0.2:9061".parse().unwrap()));
    let c = Config::parse("[admin]\nlisten = \"off\"\n", "t.toml").unwrap();
    assert_eq!(c.admin.listen, None);
    let error = Config::parse("[admin]\nlisten = \"nowhere\"\n", "t.toml").unwrap_err();
    assert!(error.to_string().contains("not ADDR:PORT"), "{error}");
}

#[test]
fn cluster_section_parses_and_short_secrets_are_refused() {
    let c = Config::parse(
        "domains = [\"sip.test\"]\n[cluster]\nsecret = \"0123456789abcdef-new\"\n\
         previous_secrets = [\"0123456789abcdef-old\"]\ncontact_rewrite = \"always\"\n\
         path_transport = \"udp\"\n[tenants.contact_rewrite]\nacme = \"off\"\n",
        "c.toml",
    )
    .unwrap();
    assert_eq!(
        c.cluster.secrets(),
        ["0123456789abcdef-new", "0123456789abcdef-old"]
    );
    assert_eq!(
        c.cluster.contact_rewrite,
        crate::cluster::ContactRewrite::Always
    );
    assert_eq!(
        c.tenants.contact_rewrite.get("acme"),
        Some(&crate::cluster::ContactRewrite::Off)
    );
    assert_eq!(c.cluster_domain(), "sip.test");
    let err = Config::parse("[cluster]\nsecret = \"short\"\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster.secret"), "{err}");
    // Unset: one random secret per process (single node).
    let single = Config::default().cluster.secrets();
    assert_eq!(single.len(), 1);
    assert_ne!(single, Config::default().cluster.secrets());
}

#[test]
fn effective_settings_print_as_toml_that_parses_back_without_the_secrets() {
    let text = "[cluster]\nsecret = \"a cluster secret of some length\"\n\
                previous_secrets = [\"an older secret of some length\"]\n\
                [store]\nbackend = \"cassandra\"\n[store.cassandra]\npassword = \"hunter2hunter2\"\n";
    let config = Config::parse(text, "secret.toml").unwrap();
    let printed = config.redacted_toml();
    for secret in ["a cluster secret", "an older secret", "hunter2"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(printed.contains("<redacted>"), "{printed}");
    assert!(
        printed.contains("drain_ms = 30000"),
        "every default is shown: {printed}"
    );
    // A redacted dump is no working config (the placeholder is no secret)...
    let err = Config::parse(&printed, "printed.toml").unwrap_err();
    assert!(err.to_string().contains("cluster.secret"), "{err}");
    // ...but one without secrets reads back as the same settings.
    let plain = Config::parse("[timers]\nt1_ms = 250\n", "plain.toml").unwrap();
    let back = Config::parse(&plain.redacted_toml(), "printed.toml").unwrap();
    assert_eq!(back.timers.t1_ms, 250);
    assert_eq!(back.redacted_toml(), plain.redacted_toml());
}

#[test]
fn the_foot_guns_are_named() {
    // The defaults: a wildcard listener without `advertise`, no egress limit.
    let warnings = Config::default().warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("advertise"), "{warnings:?}");
    assert!(warnings[1].contains("[egress] allow"), "{warnings:?}");

    let shared = Config::parse(
        "advertise = \"sip.example.test\"\n[egress]\nallow = [\"127.0.0.0/8\"]\n\
         [store]\nbackend = \"cassandra\"\n",
        "c.toml",
    )
    .unwrap();
    assert_eq!(shared.warnings().len(), 1);
    assert!(shared.warnings()[0].contains("secret is not set"));

    let weak = Config::parse(
        "advertise = \"a\"\n[egress]\nallow = [\"127.0.0.0/8\"]\n[cluster]\nsecret = \"only twenty chars!!!\"\n",
        "w.toml",
    )
    .unwrap();
    assert_eq!(
        weak.warnings(),
        ["[cluster] secret is 20 characters; use 32 or more random ones"]
    );

    let sound = Config::parse(
        "advertise = \"a\"\n[egress]\nallow = [\"10.0.0.0/8\"]\n[cluster]\n\
         secret = \"0123456789abcdef0123456789abcdef\"\n",
        "s.toml",
    )
    .unwrap();
    assert!(sound.warnings().is_empty(), "{:?}", sound.warnings());
}

#[test]
fn the_full_example_has_every_key_at_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/full.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let full = Config::parse(&text, "full.toml").unwrap();
    assert_eq!(
        full.redacted_toml(),
        Config::default().redacted_toml(),
        "examples/full.toml sets a key to something else than its default"
    );
    // Every key the defaults print is written out in the file.
    fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = value {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                keys(v, &format!("{path}."), out);
                out.push(path);
            }
        }
    }
    let (mut expected, mut written) = (Vec::new(), Vec::new());
    let defaults: toml::Value = toml::from_str(&Config::default().redacted_toml()).unwrap();
    keys(&defaults, "", &mut expected);
    keys(&toml::from_str(&text).unwrap(), "", &mut written);
    let missing: Vec<&String> = expected.iter().filter(|k| !written.contains(k)).collect();
    assert!(missing.is_empty(), "examples/full.toml lacks {missing:?}");
}

#[test]
fn the_packaged_conffile_is_full_toml_commented_with_persistence_on() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let committed =
        std::fs::read_to_string(format!("{root}/packaging/debian/switchyard.toml")).unwrap();
    let fresh = std::env::temp_dir().join(format!("sy-conffile-{}.toml", std::process::id()));
    let status = std::process::Command::new("bash")
        .arg(format!("{root}/packaging/debian/gen-conffile.sh"))
        .arg(&fresh)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let regenerated = std::fs::read_to_string(&fresh).unwrap();
    std::fs::remove_file(&fresh).unwrap();
    assert!(
        committed == regenerated,
        "packaging/debian/switchyard.toml is stale: run bash packaging/debian/gen-conffile.sh"
    );
    let packaged = Config::parse(&committed, "switchyard.toml").unwrap();
    assert_eq!(
        packaged.store.persist.as_deref(),
        Some(std::path::Path::new(
            "/var/lib/switchyard/registrations.json"
        ))
    );
    let mut expected = Config::default();
    expected.store.persist = packaged.store.persist.clone();
    assert_eq!(packaged.redacted_toml(), expected.redacted_toml());
}

#[test]
fn a_tenant_has_a_policy_or_a_chain_and_links_have_distinct_names() {
    let chain = r#"
[[tenants.chains.acme]]
name = "limits"
module = "builtin:rate-limit"
[[tenants.chains.acme]]
name = "pbx"
module = "builtin:hosted-pbx"
"#;
    let ok = Config::parse(chain, "t").unwrap();
    assert_eq!(
        ok.tenants
            .slots()
            .into_iter()
            .map(|(slot, _)| slot)
            .collect::<Vec<_>>(),
        ["acme/limits", "acme/pbx"]
    );
    let both = format!("{chain}\n[tenants.policies.acme]\nmodule = \"builtin:default\"\n");
    let err = Config::parse(&both, "t").unwrap_err().to_string();
    assert!(
        err.contains("tenants.chains.acme") && err.contains("one or the other"),
        "{err}"
    );
    let twice = chain.replace("name = \"pbx\"", "name = \"limits\"");
    let err = Config::parse(&twice, "t").unwrap_err().to_string();
    assert!(err.contains("two links are named \"limits\""), "{err}");
}
