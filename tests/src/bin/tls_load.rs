//! TLS REGISTER load over many persistent connections, for
//! `bench/transports.sh` (Debian's SIPp has no TLS).
//!
//!     tls_load ADDR:PORT CA.pem FROM_IP CONNS RATE SECS DOMAIN
//!
//! Opens CONNS TLS connections from FROM_IP to ADDR:PORT, verifying the
//! server's certificate against CA.pem for ADDR's IP, all before the clock
//! starts; then sends RATE REGISTERs a second for SECS seconds, spread
//! evenly over the connections (each connection one every CONNS/RATE
//! seconds, staggered), users drawn in turn from 10k AORs of DOMAIN; waits
//! up to 4 s for the last answers and prints one JSON line: connections,
//! handshake time, sent, 2xx, other finals, unanswered, achieved rate.
//! Everything stays on the addresses given (127.0.0.0/8 in the bench).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use switchyard_codec::{Framing, SipMessage, frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

fn register(domain: &str, from: SocketAddr, conn: usize, seq: u64) -> String {
    let user = (conn as u64 * 7919 + seq) % 10_000;
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/TLS {from};branch=z9hG4bK-{conn}-{seq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:user{user}@{domain}>;tag={conn}-{seq}\r\n\
         To: <sip:user{user}@{domain}>\r\nCall-ID: load-{conn}-{seq}@bench\r\nCSeq: {seq} REGISTER\r\n\
         Contact: <sip:user{user}@{ip}:5070>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
        ip = from.ip(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, ca, from_ip, conns, rate, secs, domain] = args.as_slice() else {
        eprintln!("usage: tls_load ADDR:PORT CA.pem FROM_IP CONNS RATE SECS DOMAIN");
        std::process::exit(2);
    };
    let target: SocketAddr = target.parse().expect("ADDR:PORT");
    let from_ip: std::net::IpAddr = from_ip.parse().expect("FROM_IP");
    let (conns, rate, secs): (usize, f64, u64) = (
        conns.parse().expect("CONNS"),
        rate.parse().expect("RATE"),
        secs.parse().expect("SECS"),
    );
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA cert")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::IpAddress(target.ip().into());

    // Every connection first, 64 handshakes at a time.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let mut opening = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (connector, name, gate) = (connector.clone(), name.clone(), gate.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from_ip, 0))?;
            let tcp = socket.connect(target).await?;
            let local = tcp.local_addr()?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>((tls, local))
        }));
    }
    let mut streams = Vec::with_capacity(conns);
    for task in opening {
        streams.push(task.await.unwrap().expect("TLS connection"));
    }
    let handshake_ms = started.elapsed().as_millis();

    let counts = Arc::new(Counts::default());
    let period = Duration::from_secs_f64(conns as f64 / rate);
    let per_conn = (rate * secs as f64 / conns as f64).round() as u64;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(conns);
    for (i, (stream, local)) in streams.into_iter().enumerate() {
        let counts = counts.clone();
        let domain = domain.clone();
        let offset = period.mul_f64(i as f64 / conns as f64);
        tasks.push(tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(stream);
            let reader = {
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Framing::Complete(n) = frame(&buf, 65536) {
                            let data = Bytes::copy_from_slice(&buf[..n]);
                            buf.drain(..n);
                            match SipMessage::parse(data).ok().and_then(|m| m.status()) {
                                Some(s) if (200..300).contains(&s) => {
                                    counts.ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Some(s) if s >= 300 => {
                                    counts.failed.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {}
                            }
                        }
                        match rd.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                })
            };
            let mut tick = tokio::time::interval_at(t0 + offset, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for seq in 1..=per_conn {
                tick.tick().await;
                if wr
                    .write_all(register(&domain, local, i, seq).as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            (reader, wr)
        }));
    }
    let mut keep = Vec::with_capacity(conns);
    for task in tasks {
        keep.push(task.await.unwrap());
    }
    let sending_secs = t0.elapsed().as_secs_f64();
    // The last answers: at most 4 s more.
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let done = counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed);
        if done >= counts.sent.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (sent, ok, failed) = (
        counts.sent.load(Ordering::Relaxed),
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    println!(
        "{{\"conns\":{conns},\"handshake_ms\":{handshake_ms},\"rate\":{rate},\"secs\":{sending_secs:.3},\
         \"sent\":{sent},\"ok\":{ok},\"failed\":{failed},\"unanswered\":{},\"achieved\":{:.0}}}",
        sent.saturating_sub(ok + failed),
        ok as f64 / sending_secs.max(0.001)
    );
    for (reader, _wr) in keep {
        reader.abort();
    }
}
