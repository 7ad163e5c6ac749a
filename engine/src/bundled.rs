//! Policies shipped inside the binary, usable as `module = "builtin:<name>"`
//! without any file. `engine/build.rs` compiles `policies/` for
//! `wasm32-wasip2` on every build of this crate.

/// Names accepted after `builtin:`.
pub const NAMES: [&str; 4] = ["default", "hosted-pbx", "lcr", "rate-limit"];

macro_rules! artifact {
    ($file:literal) => {
        include_bytes!(concat!(env!("SWITCHYARD_POLICY_WASM_DIR"), "/", $file))
    };
}

static DEFAULT: &[u8] = artifact!("default.wasm");
static HOSTED_PBX: &[u8] = artifact!("hosted_pbx.wasm");
static LCR: &[u8] = artifact!("lcr.wasm");
static RATE_LIMIT: &[u8] = artifact!("rate_limit.wasm");

/// The component bytes of a built-in policy.
pub fn module(name: &str) -> Option<&'static [u8]> {
    match name {
        "default" => Some(DEFAULT),
        "hosted-pbx" => Some(HOSTED_PBX),
        "lcr" => Some(LCR),
        "rate-limit" => Some(RATE_LIMIT),
        _ => None,
    }
}

/// Where the build put the compiled policies, test-only ones included
/// (`policies/testing/*`): for tests and benchmarks run from the source tree.
#[cfg(any(test, feature = "testing"))]
pub fn artifact_dir() -> &'static std::path::Path {
    std::path::Path::new(env!("SWITCHYARD_POLICY_WASM_DIR"))
}
