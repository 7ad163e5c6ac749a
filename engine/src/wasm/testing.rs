//! Helpers for the engine's tests: the test components built by
//! `engine/build.rs` (from `policies/`), requests, and a fixed location store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{EngineConfig, FailureMode, LoadSpec, PolicyEngine, PolicyVersion};
use crate::{Origin, RequestInfo};
use switchyard_location::{Aor, Binding, LocationStore, RegisterError, StoreError};
use switchyard_proto::net::{Source, Transport};
use switchyard_proto::registrar::{RegisterOutcome, RegisterUpdate};

pub const TENANT: &str = "acme";

/// A compiled component from the policies workspace, e.g. `test_engine_probe`.
pub fn artifact(name: &str) -> Arc<[u8]> {
    let path = Path::new(env!("SWITCHYARD_POLICY_WASM_DIR")).join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => bytes.into(),
        Err(error) => panic!(
            "{}: {error} (built from policies/ by engine/build.rs)",
            path.display()
        ),
    }
}

/// Small pools: tests run in parallel, each with its own engine. Deadlines
/// are generous because a debug build of the whole suite shares two cores:
/// the tests check that a call is cut off, not how precisely.
pub fn config() -> EngineConfig {
    EngineConfig {
        hook_deadline_ms: 100,
        init_deadline_ms: 500,
        max_instances: 16,
        max_instances_per_version: 4,
        ..EngineConfig::default()
    }
}

pub fn engine_with(config: EngineConfig) -> PolicyEngine {
    PolicyEngine::new(config, None).expect("engine")
}

pub fn spec(name: &str, config_json: &str, failure: FailureMode) -> LoadSpec {
    LoadSpec {
        tenant: TENANT.into(),
        source: format!("test:{name}"),
        bytes: artifact(name),
        config_json: config_json.into(),
        failure,
    }
}

/// The engine-probe component, whose behaviour a request picks with its
/// Request-URI user (see `policies/testing/engine-probe`).
pub fn probe(engine: &PolicyEngine, failure: FailureMode) -> Arc<PolicyVersion> {
    engine
        .load(spec("test_engine_probe", "{}", failure))
        .expect("probe loads")
}

pub fn source() -> Source {
    Source {
        transport: Transport::Udp,
        remote: "127.0.0.1:5070".parse().unwrap(),
        local: "127.0.0.1:5060".parse().unwrap(),
    }
}

/// An INVITE to `sip:<user>@acme.test`, about 640 bytes with its SDP.
pub struct Invite {
    pub uri: String,
    pub message: Vec<u8>,
}

impl Invite {
    pub fn to(user: &str) -> Invite {
        let uri = format!("sip:{user}@acme.test");
        let message = format!(
            "INVITE {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <{uri}>\r\n\
From: Alice <sip:alice@acme.test>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@127.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070;ob>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 136\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n"
        );
        Invite {
            uri,
            message: message.into_bytes(),
        }
    }

    pub fn info<'a>(&'a self, bindings: &'a [Binding]) -> RequestInfo<'a> {
        RequestInfo {
            tenant: TENANT,
            method: "INVITE",
            origin: &Origin::Unchecked,
            request_uri: &self.uri,
            message: &self.message,
            source: source(),
            bindings,
        }
    }
}

/// A binding for `contact` expiring in an hour.
pub fn binding(contact: &str) -> Binding {
    let now = SystemTime::now();
    Binding {
        contact: contact.into(),
        contact_key: contact.into(),
        instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
        reg_id: Some(1),
        q: None,
        path: vec!["<sip:edge.acme.test;lr>".into()],
        call_id: "reg-1".into(),
        cseq: 1,
        expires_at: now + Duration::from_secs(3600),
        registered_at: now,
        source: source(),
        node: None,
        user_agent: None,
    }
}

/// A store whose cache holds fixed bindings for one AOR.
pub struct FixedStore {
    pub aor: Aor,
    pub bindings: Vec<Binding>,
}

#[async_trait]
impl LocationStore for FixedStore {
    async fn register(
        &self,
        _aor: &Aor,
        _update: &RegisterUpdate,
        _now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        Err(StoreError::Backend("read-only test store".into()).into())
    }

    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        Ok(self.cached(aor, now).unwrap_or_default())
    }

    async fn purge_expired(&self, _now: SystemTime) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn backend(&self) -> &'static str {
        "fixed"
    }

    fn cached(&self, aor: &Aor, _now: SystemTime) -> Option<Vec<Binding>> {
        (*aor == self.aor).then(|| self.bindings.clone())
    }
}
