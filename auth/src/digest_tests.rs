use super::*;

// RFC 7616 §3.9.1.
const REALM: &str = "http-auth@example.org";
const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
const URI: &str = "/dir/index.html";
const MD5_RESPONSE: &str = "8ca523f5e9506fed4657c9700eebdbec";
const SHA256_RESPONSE: &str = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

fn mufasa(alg: Algorithm) -> String {
    ha1(alg, "Mufasa", REALM, "Circle of Life")
}

/// The Authorization value of RFC 7616 §3.9.1, line breaks included.
fn rfc7616_header(algorithm: &str, response: &str) -> String {
    format!(
        "Digest username=\"Mufasa\",\r\n    realm=\"{REALM}\",\r\n    uri=\"{URI}\",\r\n    \
         algorithm={algorithm},\r\n    nonce=\"{NONCE}\",\r\n    nc=00000001,\r\n    \
         cnonce=\"{CNONCE}\",\r\n    qop=auth,\r\n    response=\"{response}\",\r\n    \
         opaque=\"{OPAQUE}\""
    )
}

/// username, realm, nonce, uri, response, followed by `extra`.
fn minimal(extra: &str) -> String {
    format!(
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"{extra}"
    )
}

const RFC7616: [(Algorithm, &str); 2] = [
    (Algorithm::Md5, MD5_RESPONSE),
    (Algorithm::Sha256, SHA256_RESPONSE),
];

#[test]
fn rfc7616_md5_and_sha256_responses() {
    for (alg, expected) in RFC7616 {
        let qop = Some((Qop::Auth, "00000001", CNONCE));
        let got = response(alg, &mufasa(alg), NONCE, qop, "GET", URI, b"");
        assert_eq!(got, expected, "{alg:?}");
    }
}

#[test]
fn rfc7616_headers_parse_and_verify() {
    for (alg, expected) in RFC7616 {
        let header = rfc7616_header(alg.name(), expected);
        let creds = parse(&header).expect("RFC 7616 example parses");
        assert_eq!(creds.username, "Mufasa");
        assert_eq!(creds.realm, REALM);
        assert_eq!(creds.nonce, NONCE);
        assert_eq!(creds.uri, URI);
        assert_eq!(creds.response, expected);
        assert_eq!(creds.algorithm, alg);
        assert_eq!(creds.opaque.as_deref(), Some(OPAQUE));
        assert_eq!(
            (creds.qop, creds.nc, creds.cnonce.as_deref()),
            (Some(Qop::Auth), Some(1), Some(CNONCE))
        );
        assert_eq!(creds.nc_text.as_deref(), Some("00000001"));
        // Nothing escaped: every value borrows from the header.
        assert!(matches!(creds.username, Cow::Borrowed(_)));
        assert!(verify(&creds, &mufasa(alg), "GET", b""));
        assert!(!verify(&creds, &mufasa(alg), "POST", b""));
        let wrong_password = ha1(alg, "Mufasa", REALM, "circle of life");
        assert!(!verify(&creds, &wrong_password, "GET", b""));
    }
}

#[test]
fn rfc2617_md5_example() {
    // RFC 2617 §3.5 (note "Circle Of Life" there).
    let (alg, nonce) = (Algorithm::Md5, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
    let ha1 = ha1(alg, "Mufasa", "testrealm@host.com", "Circle Of Life");
    let qop = Some((Qop::Auth, "00000001", "0a4f113b"));
    let got = response(alg, &ha1, nonce, qop, "GET", URI, b"");
    assert_eq!(got, "6629fae49393a05397450978507c4ef1");
}

/// RFC 7616 §3.9.2 computed with the plain username (we refuse
/// userhash=true, but the response does not depend on it). The RFC prints
/// ae66e67d…, which is SHA-512 truncated to 256 bits; RFC erratum 4897
/// gives these FIPS 180-4 SHA-512/256 values, which RFC 8760 specifies.
#[test]
fn rfc7616_sha512_256_example_per_erratum_4897() {
    let alg = Algorithm::Sha512_256;
    let user = "J\u{e4}s\u{f8}n Doe";
    assert_eq!(
        alg.hash_hex(format!("{user}:api@example.org").as_bytes()),
        "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    );
    let ha1 = ha1(alg, user, "api@example.org", "Secret, or not?");
    let cnonce = "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v";
    let nonce = "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK";
    let got = response(
        alg,
        &ha1,
        nonce,
        Some((Qop::Auth, "00000001", cnonce)),
        "GET",
        "/doe.json",
        b"",
    );
    let erratum = "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5";
    assert_eq!(got, erratum);
}

#[test]
fn sha512_256_round_trip() {
    let alg = Algorithm::Sha512_256;
    let ha1 = ha1(alg, "alice", "sip.test", "s3cret");
    assert_eq!(ha1.len(), 64);
    let qop = Some((Qop::Auth, "0000000a", "xyz"));
    let expected = response(alg, &ha1, "abc", qop, "REGISTER", "sip:sip.test", b"");
    let header = format!(
        "Digest username=\"alice\", realm=\"sip.test\", nonce=\"abc\", uri=\"sip:sip.test\", \
         response=\"{expected}\", algorithm=SHA-512-256, qop=auth, nc=0000000a, cnonce=\"xyz\""
    );
    let creds = parse(&header).expect("parses");
    assert_eq!(creds.nc, Some(10));
    assert!(verify(&creds, &ha1, "REGISTER", b""));
    // Uppercase hex is the same digest.
    let upper = header.replace(&expected, &expected.to_ascii_uppercase());
    let creds_upper = parse(&upper).expect("parses");
    assert!(verify(&creds_upper, &ha1, "REGISTER", b""));
    // One changed digit, a truncated or an empty response: refused.
    let last = if expected.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{last}", &expected[..63]);
    for bad in [tampered.as_str(), &expected[..63], ""] {
        let mut creds = creds.clone();
        creds.response = Cow::Borrowed(bad);
        assert!(!verify(&creds, &ha1, "REGISTER", b""), "{bad:?}");
    }
}

#[test]
fn auth_int_hashes_the_body() {
    let alg = Algorithm::Sha256;
    let ha1 = ha1(alg, "bob", "sip.test", "pw");
    let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
    let qop = Some((Qop::AuthInt, "00000001", "cn"));
    let got = response(alg, &ha1, "n", qop, "INVITE", "sip:carol@sip.test", body);
    let ha2 = alg.hash_hex(format!("INVITE:sip:carol@sip.test:{}", alg.hash_hex(body)).as_bytes());
    let by_hand = alg.hash_hex(format!("{ha1}:n:00000001:cn:auth-int:{ha2}").as_bytes());
    assert_eq!(got, by_hand);
    let header = format!(
        "Digest username=\"bob\", realm=\"sip.test\", nonce=\"n\", uri=\"sip:carol@sip.test\", \
         response=\"{got}\", algorithm=SHA-256, qop=auth-int, nc=00000001, cnonce=\"cn\""
    );
    let creds = parse(&header).expect("parses");
    assert!(verify(&creds, &ha1, "INVITE", body));
    let changed = b"v=0\r\no=- 1 1 IN IP4 192.0.2.66\r\n";
    assert!(!verify(&creds, &ha1, "INVITE", changed));
    assert!(!verify(&creds, &ha1, "INVITE", b""));
}

#[test]
fn without_qop_is_rfc2069() {
    let alg = Algorithm::Md5;
    let ha1 = ha1(alg, "u", "r", "p");
    let got = response(alg, &ha1, "n", None, "REGISTER", "sip:r", b"ignored");
    let ha2 = alg.hash_hex(b"REGISTER:sip:r");
    assert_eq!(got, alg.hash_hex(format!("{ha1}:n:{ha2}").as_bytes()));
    // cnonce and nc without qop are ignored; the algorithm defaults to MD5.
    let header = minimal(", cnonce=\"c\", nc=zz").replace("\"00\"", &format!("\"{got}\""));
    let creds = parse(&header).expect("parses");
    assert_eq!(creds.algorithm, Algorithm::Md5);
    assert!(creds.qop.is_none() && creds.nc.is_none() && creds.cnonce.is_none());
    assert!(verify(&creds, &ha1, "REGISTER", b""));
}

#[test]
fn quoted_strings_unescape() {
    let header = minimal("").replace("username=\"u\"", r#"username="al\"ice, \\x\y""#);
    let creds = Credentials::parse(&header).expect("parses");
    assert_eq!(creds.username, r#"al"ice, \xy"#);
    assert!(matches!(creds.username, Cow::Owned(_)));
    // A comma and '=' inside quotes neither split nor end a value.
    let header = minimal(", opaque=\"a,b=c\"");
    let creds = parse(&header).expect("parses");
    assert_eq!(creds.opaque.as_deref(), Some("a,b=c"));
    // Non-ASCII survives escaping and non-escaping.
    let header = minimal("").replace("\"u\"", "\"J\u{e4}s\\\u{f8}n\"");
    let creds = parse(&header).expect("parses");
    assert_eq!(creds.username, "J\u{e4}s\u{f8}n");
}

#[test]
fn lenient_spelling() {
    let value = "  digest   username = \"u\" ,realm=\"r\",,  nonce =\"n\"\t, uri=\"sip:r\",\
                 response=\"00\", QOP=\"Auth\", NC=\"0000000F\", cnonce=c, Algorithm=\"sha-256\", \
                 foo=bar, baz=\"q,x\", userhash=FALSE,";
    let creds = parse(value).expect("parses");
    assert_eq!((creds.username.as_ref(), creds.realm.as_ref()), ("u", "r"));
    assert_eq!(creds.algorithm, Algorithm::Sha256);
    assert_eq!(
        (creds.qop, creds.nc, creds.cnonce.as_deref()),
        (Some(Qop::Auth), Some(15), Some("c"))
    );
    // The nc is hashed as sent, uppercase included.
    assert_eq!(creds.nc_text.as_deref(), Some("0000000F"));
}

#[test]
fn refused_credentials() {
    use DigestError::*;
    let cases = [
        // Not Digest at all.
        ("", NotDigest),
        ("   ", NotDigest),
        ("Basic dXNlcjpwYXNz", NotDigest),
        ("Digestive username=\"u\"", NotDigest),
        // Required parameters.
        ("Digest", Missing("username")),
        (
            "Digest realm=r, nonce=n, uri=u, response=0",
            Missing("username"),
        ),
        (
            "Digest username=u, nonce=n, uri=u, response=0",
            Missing("realm"),
        ),
        (
            "Digest username=u, realm=r, uri=u, response=0",
            Missing("nonce"),
        ),
        (
            "Digest username=u, realm=r, nonce=n, response=0",
            Missing("uri"),
        ),
        (
            "Digest username=u, realm=r, nonce=n, uri=u",
            Missing("response"),
        ),
        (&minimal(", qop=auth, nc=00000001"), Missing("cnonce")),
        (&minimal(", qop=auth, cnonce=\"c\""), Missing("nc")),
        // A second value for a known parameter, whatever its case.
        (&minimal(", realm=\"other\""), Duplicate("realm")),
        (&minimal(", Response=\"01\""), Duplicate("response")),
        // Values we do not support.
        (
            &minimal(", algorithm=SHA-1"),
            UnsupportedAlgorithm("SHA-1".into()),
        ),
        (
            &minimal(", algorithm=MD5-sess"),
            UnsupportedAlgorithm("MD5-sess".into()),
        ),
        (
            &minimal(", algorithm=SHA-256-sess"),
            UnsupportedAlgorithm("SHA-256-sess".into()),
        ),
        (
            &minimal(&format!(", algorithm={}", "X".repeat(999))),
            UnsupportedAlgorithm("X".repeat(32)),
        ),
        (
            &minimal(", qop=auth-conf, nc=00000001, cnonce=c"),
            UnsupportedQop("auth-conf".into()),
        ),
        (
            &minimal(", qop=\"auth,auth-int\", nc=00000001, cnonce=c"),
            UnsupportedQop("auth,auth-int".into()),
        ),
        (&minimal(", userhash=true"), UserhashUnsupported),
        (&minimal(", userhash=maybe"), InvalidValue("userhash")),
        (&minimal(", qop=auth, cnonce=c, nc=1"), InvalidValue("nc")),
        (
            &minimal(", qop=auth, cnonce=c, nc=000000001"),
            InvalidValue("nc"),
        ),
        (
            &minimal(", qop=auth, cnonce=c, nc=0000000g"),
            InvalidValue("nc"),
        ),
        (
            &minimal(", qop=auth, cnonce=c, nc=+0000001"),
            InvalidValue("nc"),
        ),
        (
            &minimal(", qop=auth, cnonce=c, nc=\"\""),
            InvalidValue("nc"),
        ),
        // Syntax.
        ("Digest username=\"u", Malformed),
        ("Digest username=\"u\\", Malformed),
        ("Digest username", Malformed),
        ("Digest username=", Malformed),
        ("Digest =\"u\"", Malformed),
        ("Digest username=\"u\" realm=\"r\"", Malformed),
        ("Digest username=u\"x\"", Malformed),
        ("Digest username=\"u\"x, realm=\"r\"", Malformed),
        ("Digest (username)=\"u\"", Malformed),
    ];
    for (value, expected) in cases {
        assert_eq!(parse(value), Err(expected), "{value:?}");
    }
    // Unknown parameters may repeat: they are ignored.
    assert!(parse(&minimal(", x=1, x=2")).is_ok());
}

#[test]
fn no_input_panics() {
    let header = rfc7616_header("SHA-256", SHA256_RESPONSE);
    for (i, _) in header.char_indices() {
        let _ = parse(&header[..i]);
    }
    for odd in [
        "Digest \"",
        "Digest a=\"\\\u{e9}\"",
        "Digest \u{e9}=\u{e9}",
        "Digest a=\"\u{0}\"",
    ] {
        let _ = parse(odd);
    }
}

#[test]
fn algorithm_names_and_hashes() {
    assert_eq!(Algorithm::default(), Algorithm::Md5);
    use Algorithm::*;
    assert_eq!(Algorithm::PREFERENCE, [Sha512_256, Sha256, Md5]);
    for alg in Algorithm::PREFERENCE {
        assert_eq!(Algorithm::parse(alg.name()), Some(alg));
        assert_eq!(Algorithm::parse(&alg.name().to_lowercase()), Some(alg));
    }
    assert_eq!(Algorithm::parse("SHA-512/256"), None);
    assert_eq!(Md5.hash_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        Algorithm::Sha256.hash_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // FIPS 180-4 SHA-512/256 "abc" example: not SHA-512 truncated.
    assert_eq!(
        Algorithm::Sha512_256.hash_hex(b"abc"),
        "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    );
    assert_eq!(Qop::parse("AUTH-INT"), Some(Qop::AuthInt));
    assert_eq!(Qop::parse("auth-conf"), None);
}

#[test]
fn challenge_format() {
    assert_eq!(
        challenge(Algorithm::Sha256, "sip.test", "abc", None, false),
        "Digest realm=\"sip.test\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\""
    );
    assert_eq!(
        challenge(Algorithm::Md5, "sip.test", "abc", Some("op"), true),
        "Digest realm=\"sip.test\", nonce=\"abc\", algorithm=MD5, qop=\"auth\", opaque=\"op\", stale=true"
    );
    assert_eq!(
        challenge(Algorithm::Sha512_256, "a\"b\\c\r\nX: y", "n", None, false),
        "Digest realm=\"a\\\"b\\\\cX: y\", nonce=\"n\", algorithm=SHA-512-256, qop=\"auth\""
    );
}

/// What a UA echoes back from our challenge parses to the same values.
#[test]
fn challenge_values_round_trip() {
    let realm = r#"we "quote", \ too"#;
    let value = challenge(Algorithm::Sha256, realm, "n0nce", Some("o"), false);
    // Our challenge's parameters, plus what only credentials carry.
    let echoed = format!("{value}, username=u, uri=u, response=0").replace("qop=", "x=");
    let creds = parse(&echoed).expect("parses");
    assert_eq!(
        (creds.realm.as_ref(), creds.nonce.as_ref()),
        (realm, "n0nce")
    );
    assert_eq!(
        (creds.opaque.as_deref(), creds.algorithm),
        (Some("o"), Algorithm::Sha256)
    );
}

#[test]
fn verify_fails_closed_on_edited_credentials() {
    let alg = Algorithm::Md5;
    let header = rfc7616_header(alg.name(), MD5_RESPONSE);
    let mut creds = parse(&header).expect("parses");
    assert!(verify(&creds, &mufasa(alg), "GET", b""));
    creds.cnonce = None;
    assert!(!verify(&creds, &mufasa(alg), "GET", b""));
    let mut creds = parse(&header).expect("parses");
    creds.qop = Some(Qop::AuthInt);
    assert!(!verify(&creds, &mufasa(alg), "GET", b""));
    creds.qop = None;
    assert!(!verify(&creds, &mufasa(alg), "GET", b""));
}
