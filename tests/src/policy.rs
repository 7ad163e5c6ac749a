//! Helpers for the tests of per-tenant WebAssembly policies: tenant
//! configuration, the compiled policy components, the admin endpoint, and
//! bounded waiting for a state change the node makes on its own (a watched
//! file loaded, a counter reaching a value).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use switchyard::admin::{Loaded, client};
use switchyard::config::TenantPolicyConfig;
use switchyard::policy::tenants::TenantStatus;
use switchyard::policy::wasm::FailureMode;
use switchyard::{Config, NodeHandle};

/// File names of the components `host/build.rs` compiles into
/// [`switchyard::policy::bundled::artifact_dir`] (cdylib names: underscores).
pub mod module {
    pub const DEFAULT: &str = "default.wasm";
    pub const HOSTED_PBX: &str = "hosted_pbx.wasm";
    pub const LCR: &str = "lcr.wasm";
    pub const RATE_LIMIT: &str = "rate_limit.wasm";
    /// Well behaved, configurable, tags what it touches (`policies/testing/tagging`).
    pub const TAGGING: &str = "test_tagging.wasm";
    /// `on-request` never returns.
    pub const SPIN: &str = "test_spin.wasm";
    /// `on-request` allocates until the memory cap.
    pub const MEMORY_BOMB: &str = "test_memory_bomb.wasm";
    /// `on-request` executes `unreachable`.
    pub const TRAP: &str = "test_trap.wasm";
    /// `on-request` panics.
    pub const PANIC: &str = "test_panic.wasm";
    /// `on-request` adds a 1 MiB header value.
    pub const HUGE_HEADER: &str = "test_huge_header.wasm";
    /// Exports `switchyard:policy/hooks` with another shape.
    pub const WRONG_WORLD: &str = "test_wrong_world.wasm";
}

/// The path of a compiled policy component, e.g. `wasm(module::TAGGING)`.
pub fn wasm(name: &str) -> PathBuf {
    let dir = switchyard::policy::bundled::artifact_dir();
    let path = dir.join(name);
    if !path.is_file() {
        let built: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        panic!("{} was not built; {} holds {built:?}", name, dir.display());
    }
    path
}

/// The bytes of a compiled policy component.
pub fn wasm_bytes(name: &str) -> Vec<u8> {
    let path = wasm(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `[tenants.policies.<tenant>]`: `module` (`builtin:<name>` or a path),
/// failure mode and the `config` table written as TOML.
pub fn policy(module: &str, failure: FailureMode, config_toml: &str) -> TenantPolicyConfig {
    TenantPolicyConfig {
        module: module.to_string(),
        failure,
        config: toml::from_str(config_toml)
            .unwrap_or_else(|e| panic!("policy config is not TOML: {e}\n{config_toml}")),
    }
}

/// Makes `domain` one of the node's domains, owned by `tenant`, and gives
/// the tenant `policy` (None: the tenant runs the built-in routing).
pub fn add_tenant(
    config: &mut Config,
    tenant: &str,
    domain: &str,
    policy: Option<TenantPolicyConfig>,
) {
    config.domains.push(domain.to_string());
    config
        .tenants
        .domains
        .insert(domain.to_string(), tenant.to_string());
    if let Some(policy) = policy {
        config.tenants.policies.insert(tenant.to_string(), policy);
    }
}

/// What the node reports for `tenant` (`switchyard policy list`).
pub fn status(node: &NodeHandle, tenant: &str) -> TenantStatus {
    let tenants = node.tenants().expect("node runs its own tenants");
    tenants
        .list()
        .into_iter()
        .find(|t| t.tenant == tenant)
        .unwrap_or_else(|| panic!("tenant {tenant} not in {:?}", tenants.list()))
}

/// Polls `probe` every 10 ms until it gives a value, at most `timeout`:
/// for changes the node makes on its own, with no event to await.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the admin endpoint answered to a load that it refused.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

/// `PUT /policies/{tenant}?source=...` on the admin endpoint, spoken as raw
/// HTTP/1.1 so the test sees the status code: the new version's status and
/// swap time, or the refusal (422 and the reason).
pub async fn admin_load(
    admin: SocketAddr,
    tenant: &str,
    bytes: Vec<u8>,
    source: &str,
) -> Result<Loaded, Refused> {
    let path = format!(
        "/policies/{}?source={}",
        client::query_value(tenant),
        client::query_value(source)
    );
    let (status, body) = http(admin, "PUT", &path, &bytes).await;
    if status == 200 {
        Ok(serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("admin answer is not a load result ({e}): {body}")))
    } else {
        Err(Refused {
            status,
            message: body,
        })
    }
}

/// `POST path` (no body) on the admin endpoint: status code and body.
pub async fn admin_post(admin: SocketAddr, path: &str) -> (u16, String) {
    http(admin, "POST", path, &[]).await
}

/// `GET path` on the admin endpoint: status code and body.
pub async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    http(admin, "GET", path, &[]).await
}

/// One request on a fresh connection (`Connection: close`): status code and
/// body. The admin endpoint answers with a Content-Length body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to the admin endpoint {addr}: {e}"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/wasm\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
        .await
        .expect("admin endpoint answers within 60 s")
        .expect("reading the admin answer");
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head}"));
    (status, body.to_string())
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` atomically (a temporary file renamed into place), the
    /// way a deployment should drop a module into a watched directory.
    pub fn install(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let staging = self.0.join(format!(".{name}.partial"));
        let path = self.0.join(name);
        std::fs::write(&staging, bytes)
            .unwrap_or_else(|e| panic!("writing {}: {e}", staging.display()));
        std::fs::rename(&staging, &path)
            .unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
