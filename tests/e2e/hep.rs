//! The HEP export (`[hep]`) checked by decoders that are not ours.
//!
//! A phone registers over UDP and another sends it an OPTIONS over TCP
//! through the node, whose `[hep] collector` is a UDP socket of this test.
//! Every message in and out must reach it as a HEPv3 packet, which is then
//! decoded twice:
//! - by sipcapture's own decoder, hep-js (tests/hep): the HEP3 header,
//!   family, transport (UDP 17 / TCP 6), addresses and ports, time,
//!   protocol type SIP, capture id, auth key and correlation id (the
//!   Call-ID);
//! - by sngrep (`-E`: decapsulates HEP found in a capture) into a pcap that
//!   tshark dissects: the source and destination of each message, its time,
//!   and the payload as SIP (method or status, Call-ID).
//!
//! (tshark has no HEP dissector of its own: Wireshark's is a Lua plugin
//! outside Debian, so the HEP layer is sngrep's and hep-js's to read.)
//!
//! Everything stays on 127.0.77.0/24: the node on .1, the phones on .2 and
//! .3, the collector on .9.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_tests::ua::{self, TcpUa, UdpUa};
use switchyard_tests::{DOMAIN, start_node_with, tcp_addr, udp_addr};
use tokio::net::UdpSocket;
use tokio::process::Command;

const NODE_IP: &str = "127.0.77.1";
const BOB_IP: &str = "127.0.77.2";
const ALICE_IP: &str = "127.0.77.3";
const COLLECTOR_IP: &str = "127.0.77.9";
const CAPTURE_ID: u32 = 4242;
const PASSWORD: &str = "hep-test-secret";

/// What one exported message must be: direction, transport, first line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    src: SocketAddr,
    dst: SocketAddr,
    ip_proto: u8,
    first_line: String,
    call_id: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_in_and_out_reaches_the_collector_and_real_decoders_read_it() {
    let hep_js = hep_js_script();
    for (tool, arg) in [("tshark", "-v"), ("sngrep", "-V"), ("node", "--version")] {
        let ok = std::process::Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "{tool} not found: run tests/install-tools.sh");
    }
    let collector = UdpSocket::bind((COLLECTOR_IP, 0)).await.unwrap();
    let collector_addr = collector.local_addr().unwrap();
    let node = start_node_with(NODE_IP, |c| {
        c.hep.collector = Some(collector_addr);
        c.hep.capture_id = CAPTURE_ID;
        c.hep.password = Some(PASSWORD.into());
        c.admin.listen = Some(SocketAddr::new(NODE_IP.parse().unwrap(), 0));
    })
    .await;
    let (node_udp, node_tcp) = (udp_addr(&node), tcp_addr(&node));
    let started = SystemTime::now();

    // Bob registers over UDP.
    let bob = UdpUa::bind(BOB_IP).await;
    let register = ua::register(DOMAIN, "bob", bob.addr, "hep-1");
    let ok = bob.request(node_udp, &register, "200 to REGISTER").await;
    assert_eq!(ok.status(), Some(200));
    // Alice asks Bob's phone for its capabilities, over TCP.
    let mut alice = TcpUa::connect(ALICE_IP, node_tcp).await;
    alice.send(&options(alice.addr)).await;
    let forwarded = bob.recv_request("OPTIONS", "the proxied OPTIONS").await;
    let answer = ua::reply(&forwarded, 200, "OK", "bob-1", bob.addr);
    bob.send(node_udp, &answer).await;
    let ok = alice.recv("200 to OPTIONS").await;
    assert_eq!(ok.status(), Some(200));

    let (reg_id, opt_id) = ("reg-hep-1@test".to_string(), "opt-hep-1@test".to_string());
    let expected: BTreeSet<Expected> = [
        (
            bob.addr,
            node_udp,
            17,
            "REGISTER sip:switchyard.test SIP/2.0",
            &reg_id,
        ),
        (node_udp, bob.addr, 17, "SIP/2.0 200 OK", &reg_id),
        (
            alice.addr,
            node_tcp,
            6,
            "OPTIONS sip:bob@switchyard.test SIP/2.0",
            &opt_id,
        ),
        (node_udp, bob.addr, 17, &first_line(&forwarded), &opt_id),
        (bob.addr, node_udp, 17, "SIP/2.0 200 OK", &opt_id),
        (node_tcp, alice.addr, 6, "SIP/2.0 200 OK", &opt_id),
    ]
    .into_iter()
    .map(|(src, dst, ip_proto, line, call_id)| Expected {
        src,
        dst,
        ip_proto,
        first_line: line.to_string(),
        call_id: call_id.clone(),
    })
    .collect();
    assert!(first_line(&forwarded).starts_with("OPTIONS sip:bob@"));

    // The collector's view: six packets (and nothing more arrives).
    let mut packets = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while packets.len() < expected.len() || tokio::time::Instant::now() < deadline {
        let wait = match packets.len() < expected.len() {
            true => deadline.saturating_duration_since(tokio::time::Instant::now()),
            false => Duration::from_millis(300),
        };
        match tokio::time::timeout(wait, collector.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => packets.push((from, buf[..n].to_vec())),
            _ => break,
        }
    }
    let finished = SystemTime::now();
    let (code, metrics) =
        switchyard_tests::policy::admin_get(node.admin_addr().unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("switchyard_hep_exported_total 6\n")
            && metrics.contains("switchyard_hep_dropped_total 0\n"),
        "{metrics}"
    );
    assert!(packets.iter().all(|(_, p)| p.starts_with(b"HEP3")));

    // sipcapture's decoder.
    let decoded = hep_js_decode(&hep_js, &packets).await;
    let mut seen = BTreeSet::new();
    for d in &decoded {
        let info = &d["rcinfo"];
        assert_eq!(info["protocolFamily"], 2, "{d}");
        assert_eq!(info["payloadType"], 1, "SIP: {d}");
        assert_eq!(info["captureId"], CAPTURE_ID, "{d}");
        assert_eq!(info["capturePass"], PASSWORD, "{d}");
        let at = UNIX_EPOCH
            + Duration::from_secs(info["timeSeconds"].as_u64().unwrap())
            + Duration::from_micros(info["timeUseconds"].as_u64().unwrap());
        assert!(within(at, started, finished), "time {at:?}: {d}");
        let payload = d["payload"].as_str().unwrap();
        let addr = |ip: &str, port: &str| -> SocketAddr {
            format!("{}:{}", info[ip].as_str().unwrap(), info[port])
                .parse()
                .unwrap()
        };
        seen.insert(Expected {
            src: addr("srcIp", "srcPort"),
            dst: addr("dstIp", "dstPort"),
            ip_proto: info["protocol"].as_u64().unwrap() as u8,
            first_line: payload.lines().next().unwrap().to_string(),
            call_id: info["correlation_id"].as_str().unwrap().to_string(),
        });
        assert!(payload.contains(&format!(
            "Call-ID: {}\r\n",
            info["correlation_id"].as_str().unwrap()
        )));
    }
    assert_eq!(seen, expected, "hep-js decoded {decoded:#?}");
    assert_eq!(decoded.len(), expected.len(), "one packet per message");
    println!("hep-js decoded, e.g.: {}", decoded[0]);

    // sngrep decapsulates, tshark dissects.
    let dir = switchyard_tests::run_dir("hep", "export");
    let hep_pcap = dir.join("hep.pcap");
    write_pcap(&hep_pcap, collector_addr, &packets);
    let sip_pcap = dir.join("sip.pcap");
    let out = run(
        "sngrep",
        &[
            "-N",
            "-q",
            "-F",
            "-E",
            "-I",
            path(&hep_pcap),
            "-O",
            path(&sip_pcap),
        ],
    )
    .await;
    assert!(sip_pcap.exists(), "sngrep wrote no capture: {out}");
    let fields = [
        "frame.time_epoch",
        "ip.src",
        "udp.srcport",
        "ip.dst",
        "udp.dstport",
        "sip.Method",
        "sip.Status-Code",
        "sip.Call-ID",
        "sip.CSeq.method",
    ];
    let mut args = vec!["-r", path(&sip_pcap), "-T", "fields", "-E", "separator=|"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let table = run("tshark", &args).await;
    println!("tshark, on what sngrep decapsulated:\n{}", fields.join("|"));
    // sngrep 1.6 writes each message it decapsulated twice: a set.
    let mut dissected = BTreeSet::new();
    for line in table.lines().filter(|l| !l.is_empty()) {
        println!("{line}");
        let f: Vec<&str> = line.split('|').collect();
        let epoch: f64 = f[0].parse().unwrap();
        let at = UNIX_EPOCH + Duration::from_secs_f64(epoch);
        assert!(within(at, started, finished), "frame time {line}");
        let what = match (f[5], f[6]) {
            (method, "") => format!("{method} request"),
            ("", status) => format!("{status} to {}", f[8]),
            _ => panic!("neither request nor response: {line}"),
        };
        dissected.insert((
            format!("{}:{}", f[1], f[2]).parse::<SocketAddr>().unwrap(),
            format!("{}:{}", f[3], f[4]).parse::<SocketAddr>().unwrap(),
            what,
            f[7].to_string(),
        ));
    }
    let wanted: BTreeSet<(SocketAddr, SocketAddr, String, String)> = [
        (bob.addr, node_udp, "REGISTER request", &reg_id),
        (node_udp, bob.addr, "200 to REGISTER", &reg_id),
        (alice.addr, node_tcp, "OPTIONS request", &opt_id),
        (node_udp, bob.addr, "OPTIONS request", &opt_id),
        (bob.addr, node_udp, "200 to OPTIONS", &opt_id),
        (node_tcp, alice.addr, "200 to OPTIONS", &opt_id),
    ]
    .into_iter()
    .map(|(s, d, w, c)| (s, d, w.to_string(), c.clone()))
    .collect();
    assert_eq!(dissected, wanted, "tshark dissected:\n{table}");
    if !switchyard_tests::keep_env("SWITCHYARD_KEEP_RUNS") {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn options(me: SocketAddr) -> String {
    ua::msg(
        "OPTIONS sip:bob@{domain} SIP/2.0
Via: SIP/2.0/TCP {me};branch=z9hG4bK-opt-hep-1
Max-Forwards: 70
From: <sip:alice@{domain}>;tag=a-hep-1
To: <sip:bob@{domain}>
Call-ID: opt-hep-1@test
CSeq: 1 OPTIONS
Contact: <sip:alice@{me};transport=tcp>
Content-Length: 0

",
        &[("domain", DOMAIN), ("me", &me.to_string())],
    )
}

fn first_line(msg: &switchyard_codec::SipMessage) -> String {
    ua::first_line(msg)
}

/// `at` lies within [from - 1 s, to + 1 s].
fn within(at: SystemTime, from: SystemTime, to: SystemTime) -> bool {
    let slack = Duration::from_secs(1);
    at >= from - slack && at <= to + slack
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// tests/hep/decode.cjs, whose hep-js install.sh put in place.
fn hep_js_script() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hep");
    assert!(
        dir.join("node_modules/hep-js").is_dir(),
        "hep-js not installed in {}: run tests/install-tools.sh",
        dir.display()
    );
    dir.join("decode.cjs")
}

/// Each packet decoded by hep-js: `{rcinfo, payload}`.
async fn hep_js_decode(script: &Path, packets: &[(SocketAddr, Vec<u8>)]) -> Vec<Value> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new("node")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut input = String::new();
    for (_, p) in packets {
        input.extend(p.iter().map(|b| format!("{b:02x}")));
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("hep-js finishes")
        .unwrap();
    assert!(out.status.success(), "hep-js: {out:?}");
    let decoded: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decoded.len(), packets.len());
    for (d, (_, p)) in decoded.iter().zip(packets) {
        assert!(d.get("rcinfo").is_some(), "hep-js refused {p:02x?}");
    }
    decoded
}

/// Runs a tool to completion (30 s at most); its standard output.
async fn run(tool: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(tool).args(args).kill_on_drop(true).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool} did not finish"))
    .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The datagrams as the collector's network saw them: a classic pcap
/// file (Ethernet, IPv4, UDP) from each packet's sender to `collector`.
fn write_pcap(file: &Path, collector: SocketAddr, packets: &[(SocketAddr, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // time zone, accuracy
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    for (from, payload) in packets {
        let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (from, collector) else {
            panic!("IPv4 only");
        };
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + 8 + payload.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&src.ip().octets());
        ip.extend_from_slice(&dst.ip().octets());
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend(ip);
        frame.extend_from_slice(&src.port().to_be_bytes());
        frame.extend_from_slice(&dst.port().to_be_bytes());
        frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]); // no UDP checksum
        frame.extend_from_slice(payload);
        out.extend_from_slice(&(now.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&now.subsec_micros().to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend(frame);
    }
    std::fs::write(file, out).unwrap();
}
