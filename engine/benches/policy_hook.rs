//! Criterion benchmarks of the WebAssembly policy engine.
//!
//! * `hook/*` — one hook call through [`Policy`] on a reused (pooled)
//!   instance, marshalling included: a 619-byte INVITE with one prefetched
//!   binding for `on_request`, a 180 for `on_response`; and `fresh` — the
//!   same `on_request` when every call instantiates (+ `init`) a new
//!   instance and drops it (`instance_max_calls = 1`).
//! * `load/*` — `PolicyEngine::load` (compile or cache, import check,
//!   instantiate, `init`, smoke call) of `hosted_pbx` (the largest bundled
//!   policy) padded to ~1 MiB with a custom section: `cold` compiles (each
//!   iteration's bytes differ, defeating the cache), `memory` hits the
//!   in-memory cache, `disk` a fresh engine finding the `.cwasm`.
//!
//! Components come from the policies workspace built by `host/build.rs`; a
//! component missing from that directory is skipped.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use switchyard_engine::wasm::{EngineConfig, FailureMode, LoadSpec, PolicyEngine, PolicyVersion};
use switchyard_engine::{Origin, Policy, PolicyCtx, RequestInfo, ResponseInfo};
use switchyard_proto::location::Binding;
use switchyard_proto::net::{Source, Transport};

/// The codec benchmark's INVITE (codec/benches/parse.rs): two Vias, Route,
/// Record-Route, a GRUU/outbound Contact and an SDP offer (619 bytes).
const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.2\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.101\r\n\
Max-Forwards: 69\r\n\
Route: <sip:ss2.biloxi.example.com;lr>\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;ob>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 136\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

const RINGING: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.2\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

/// Components whose hook overhead is measured, in order of triviality.
const HOOK_POLICIES: [&str; 3] = ["bench_trivial", "default", "test_engine_probe"];

fn artifact(name: &str) -> Option<Vec<u8>> {
    let dir = Path::new(env!("SWITCHYARD_POLICY_WASM_DIR"));
    std::fs::read(dir.join(format!("{name}.wasm")))
        .ok()
        .filter(|b| !b.is_empty())
}

fn source() -> Source {
    Source {
        transport: Transport::Udp,
        remote: "127.0.0.1:5070".parse().unwrap(),
        local: "127.0.0.1:5060".parse().unwrap(),
    }
}

fn binding() -> Binding {
    let now = SystemTime::now();
    Binding {
        contact: "sip:bob@127.0.0.1:5080;ob".into(),
        contact_key: "sip:bob@127.0.0.1:5080;ob".into(),
        instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
        reg_id: Some(1),
        q: None,
        path: Vec::new(),
        call_id: "reg-1".into(),
        cseq: 1,
        expires_at: now + Duration::from_secs(3600),
        registered_at: now,
        source: source(),
        node: None,
        user_agent: None,
    }
}

fn spec(name: &str, bytes: Arc<[u8]>) -> LoadSpec {
    LoadSpec {
        tenant: "acme".into(),
        source: format!("bench:{name}"),
        bytes,
        config_json: "{}".into(),
        failure: FailureMode::FailClosed,
    }
}

fn engine(config: EngineConfig) -> PolicyEngine {
    PolicyEngine::new(config, None).expect("engine")
}

fn hooks(c: &mut Criterion) {
    eprintln!("INVITE: {} bytes", INVITE.len());
    let bindings = [binding()];
    let request = RequestInfo {
        tenant: "acme",
        method: "INVITE",
        origin: &Origin::Anonymous,
        request_uri: "sip:bob@biloxi.example.com",
        message: INVITE.as_bytes(),
        source: source(),
        bindings: &bindings,
    };
    let response = ResponseInfo {
        tenant: "acme",
        status: 180,
        message: RINGING.as_bytes(),
    };
    let mut group = c.benchmark_group("hook");
    for name in HOOK_POLICIES {
        let Some(bytes) = artifact(name) else {
            eprintln!("{name}.wasm not built: skipped");
            continue;
        };
        let bytes: Arc<[u8]> = bytes.into();
        let reused = engine(EngineConfig::default());
        let version: Arc<PolicyVersion> = reused.load(spec(name, bytes.clone())).expect("loads");
        group.bench_function(format!("{name}/on_request"), |b| {
            b.iter(|| black_box(version.on_request(black_box(&request), &mut PolicyCtx::default())))
        });
        group.bench_function(format!("{name}/on_response"), |b| {
            b.iter(|| {
                black_box(version.on_response(black_box(&response), &mut PolicyCtx::default()))
            })
        });
        assert_eq!(
            version.info().total_failures(),
            0,
            "{name}: {:?}",
            version.info()
        );

        let fresh = engine(EngineConfig {
            instance_max_calls: 1,
            ..EngineConfig::default()
        });
        let version = fresh.load(spec(name, bytes)).expect("loads");
        group.bench_function(format!("{name}/on_request_fresh_instance"), |b| {
            b.iter(|| black_box(version.on_request(black_box(&request), &mut PolicyCtx::default())))
        });
        assert_eq!(
            version.info().total_failures(),
            0,
            "{name}: {:?}",
            version.info()
        );
    }
    group.finish();
}

/// Appends a custom section (ignored by every tool) to a component, so the
/// module reaches `target` bytes and, with a distinct `tag`, a distinct hash.
fn padded(component: &[u8], target: usize, tag: u64) -> Vec<u8> {
    const NAME: &[u8] = b"switchyard-bench-padding";
    let payload = target
        .saturating_sub(component.len() + NAME.len() + 16)
        .max(8);
    let mut body = leb128(NAME.len() as u64);
    body.extend_from_slice(NAME);
    body.extend_from_slice(&tag.to_le_bytes());
    body.resize(body.len() + payload - 8, 0xA5);
    let mut out = component.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(body.len() as u64));
    out.extend(body);
    out
}

fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn load(c: &mut Criterion) {
    let Some(base) = artifact("hosted_pbx") else {
        eprintln!("hosted_pbx.wasm not built: load benchmarks skipped");
        return;
    };
    const TARGET: usize = 1 << 20;
    let small = engine(EngineConfig {
        max_instances: 64,
        ..EngineConfig::default()
    });
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    eprintln!(
        "hosted_pbx: {} bytes unpadded, {} padded",
        base.len(),
        padded(&base, TARGET, 0).len()
    );

    let mut tag = 1u64;
    group.bench_function("hosted_pbx_unpadded/cold", |b| {
        b.iter_batched(
            || {
                tag += 1;
                Arc::from(padded(&base, 0, tag))
            },
            |bytes| black_box(small.load(spec("hosted_pbx", bytes)).expect("loads")),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hosted_pbx_1MiB/cold", |b| {
        b.iter_batched(
            || {
                tag += 1;
                Arc::from(padded(&base, TARGET, tag))
            },
            |bytes| black_box(small.load(spec("hosted_pbx", bytes)).expect("loads")),
            BatchSize::PerIteration,
        )
    });
    let bytes: Arc<[u8]> = padded(&base, TARGET, 0).into();
    small
        .load(spec("hosted_pbx", bytes.clone()))
        .expect("loads");
    group.bench_function("hosted_pbx_1MiB/memory", |b| {
        b.iter(|| {
            black_box(
                small
                    .load(spec("hosted_pbx", bytes.clone()))
                    .expect("loads"),
            )
        })
    });

    let dir = cache_dir();
    let disk_config = EngineConfig {
        max_instances: 64,
        cache_dir: Some(dir.clone()),
        ..EngineConfig::default()
    };
    engine(disk_config.clone())
        .load(spec("hosted_pbx", bytes.clone()))
        .expect("loads");
    group.bench_function("hosted_pbx_1MiB/disk", |b| {
        b.iter_batched(
            || engine(disk_config.clone()),
            // Returned, so the engine and version drop outside the timing.
            |fresh| {
                let version = fresh
                    .load(spec("hosted_pbx", bytes.clone()))
                    .expect("loads");
                (fresh, version)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

fn cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-cwasm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

criterion_group!(benches, hooks, load);
criterion_main!(benches);
