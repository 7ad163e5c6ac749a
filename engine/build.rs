//! Builds the bundled WebAssembly policies (`policies/`, a separate cargo
//! workspace) for `wasm32-wasip2` in release, so that every build of the
//! host, `cargo test` and `cargo run` from a fresh clone alike, embeds
//! current components without a manual step.
//!
//! * The guest build goes to `<outer target dir>/wasm-policies`, shared by
//!   debug, release, test and clippy builds of the host.
//! * The host finds the artifacts through `SWITCHYARD_POLICY_WASM_DIR`
//!   (`include_bytes!(concat!(env!("SWITCHYARD_POLICY_WASM_DIR"), "/hosted_pbx.wasm"))`).
//! * `SWITCHYARD_SKIP_POLICY_BUILD=1` skips it (tooling that cannot build
//!   wasm): the artifacts are then empty files, which the host refuses to load.
//! * `SWITCHYARD_REPO_ROOT` overrides where `policies/` is looked for.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The components the host may embed, as `<lib name>.wasm`.
const ARTIFACTS: &[&str] = &[
    "default",
    "hosted_pbx",
    "lcr",
    "rate_limit",
    "test_tagging",
    "test_spin",
    "test_memory_bomb",
    "test_trap",
    "test_panic",
    "test_huge_header",
    "test_wrong_world",
    "test_engine_probe",
    "test_wasi_sockets",
    "bench_trivial",
];

const GUEST_TARGET: &str = "wasm32-wasip2";

fn main() {
    println!("cargo:rerun-if-env-changed=SWITCHYARD_SKIP_POLICY_BUILD");
    println!("cargo:rerun-if-env-changed=SWITCHYARD_REPO_ROOT");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    if env::var_os("SWITCHYARD_SKIP_POLICY_BUILD").is_some_and(|v| !v.is_empty() && v != "0") {
        let dir = out_dir.join("wasm-policies-skipped");
        fs::create_dir_all(&dir).expect("create placeholder dir");
        for name in ARTIFACTS {
            fs::write(dir.join(format!("{name}.wasm")), b"").expect("write placeholder");
        }
        println!(
            "cargo:warning=SWITCHYARD_SKIP_POLICY_BUILD is set: embedded policies are empty placeholders"
        );
        println!(
            "cargo:rustc-env=SWITCHYARD_POLICY_WASM_DIR={}",
            dir.display()
        );
        return;
    }

    let repo = repo_root();
    let policies = repo.join("policies");
    if !policies.join("Cargo.toml").is_file() {
        fail(format_args!(
            "{} not found: set SWITCHYARD_REPO_ROOT to the repository root, or \
             SWITCHYARD_SKIP_POLICY_BUILD=1 to build without embedded policies",
            policies.join("Cargo.toml").display()
        ));
    }
    watch_inputs(&repo, &policies);
    ensure_guest_target();

    let target_dir = outer_target_dir(&out_dir).join("wasm-policies");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(GUEST_TARGET)
        .arg("--manifest-path")
        .arg(policies.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Cargo reads `.cargo/config.toml` from the working directory up:
        // policies/.cargo/config.toml carries the guest's link flags.
        .current_dir(&policies);
    scrub_env(&mut cmd);

    let started = Instant::now();
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) => fail(format_args!(
            "could not run cargo to build the wasm policies: {e}"
        )),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        for line in stderr.lines().filter(|l| !is_progress(l)) {
            println!("cargo:warning={line}");
        }
        fail(format_args!(
            "building the WebAssembly policies failed ({}; output above as warnings).\n\
             Rebuild them alone with:\n  cd {} && cargo build --release --target {GUEST_TARGET}\n\
             The {GUEST_TARGET} target must be installed (rust-toolchain.toml lists it); \
             set SWITCHYARD_SKIP_POLICY_BUILD=1 to build the host without embedded policies.",
            output.status,
            policies.display(),
        ));
    }

    let wasm_dir = target_dir.join(GUEST_TARGET).join("release");
    for name in ARTIFACTS {
        let path = wasm_dir.join(format!("{name}.wasm"));
        if !path.is_file() {
            fail(format_args!(
                "the policy build succeeded but {} is missing: is `{name}` still a member of {}?",
                path.display(),
                policies.join("Cargo.toml").display()
            ));
        }
    }
    let elapsed = started.elapsed();
    if elapsed.as_secs() >= 30 {
        // Visible only with -vv or on warnings; says where the time went.
        eprintln!("wasm policies built in {elapsed:?}");
    }
    println!(
        "cargo:rustc-env=SWITCHYARD_POLICY_WASM_DIR={}",
        wasm_dir.display()
    );
}

/// Installs the `wasm32-wasip2` standard library when the active toolchain
/// lacks it. rust-toolchain.toml names the target, but rustup adds listed
/// targets only when it installs the toolchain itself, not to a toolchain
/// that was already on the machine: without this, `cargo test` on a fresh
/// clone would fail on such a machine.
fn ensure_guest_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else { return };
    if sysroot.join("lib/rustlib").join(GUEST_TARGET).is_dir() {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", GUEST_TARGET]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        cmd.arg("--toolchain").arg(toolchain);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => println!(
            "cargo:warning=`rustup target add {GUEST_TARGET}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => println!("cargo:warning=cannot run rustup to add {GUEST_TARGET}: {e}"),
    }
}

/// Stops the build with `message` (no panic backtrace: the message is the point).
fn fail(message: std::fmt::Arguments<'_>) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// Cargo's progress lines, left out of the warnings a failed build prints.
fn is_progress(line: &str) -> bool {
    let word = line.trim_start().split(' ').next().unwrap_or("");
    matches!(
        word,
        "Compiling"
            | "Checking"
            | "Downloading"
            | "Downloaded"
            | "Updating"
            | "Locking"
            | "Adding"
            | "Blocking"
            | "Fresh"
    )
}

/// The repository root: `$SWITCHYARD_REPO_ROOT`, else the parent of this
/// crate's directory (`engine/..`).
fn repo_root() -> PathBuf {
    if let Some(root) = env::var_os("SWITCHYARD_REPO_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .expect("engine/ has a parent directory")
}

/// The outer build's target directory: the first ancestor of OUT_DIR that
/// cargo marked with `CACHEDIR.TAG` (OUT_DIR itself if none is).
fn outer_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .to_path_buf()
}

/// Reruns this script when a guest input changes. Cargo scans a listed
/// directory recursively, so only source directories are listed, never one
/// that could hold a `target/` (policies/, guest-sdk/).
fn watch_inputs(repo: &Path, policies: &Path) {
    let watch = |p: PathBuf| println!("cargo:rerun-if-changed={}", p.display());
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        watch(policies.join(file));
    }
    // Every member directory: policies/<name>/ and policies/testing/<name>/.
    for parent in [policies.to_path_buf(), policies.join("testing")] {
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("Cargo.toml").is_file() {
                watch(path);
            }
        }
    }
    let sdk = repo.join("guest-sdk");
    watch(sdk.join("Cargo.toml"));
    watch(sdk.join("src"));
    watch(repo.join("codec").join("Cargo.toml"));
    watch(repo.join("codec").join("src"));
    watch(repo.join("wit"));
    // The codec inherits versions from the root workspace manifest.
    watch(repo.join("Cargo.toml"));
}

/// Removes what the outer cargo set for this build script (or for the
/// crate being compiled) so the nested build is configured only by
/// policies/Cargo.toml and policies/.cargo/config.toml. Kept: the
/// jobserver (CARGO_MAKEFLAGS), CARGO, RUSTC, RUSTUP_TOOLCHAIN, CARGO_HOME,
/// and network/registry settings.
fn scrub_env(cmd: &mut Command) {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
        "CARGO_RUSTC_CURRENT_DIR",
        "CARGO_INCREMENTAL",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
        "SWITCHYARD_REPO_ROOT",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PROFILE_",
        "CARGO_TARGET_",
        "DEP_",
        "CLIPPY_",
        "__CARGO",
    ];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
}
