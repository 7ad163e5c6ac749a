//! The guest side's own unit tests, run by `cargo test --workspace`: the
//! SDK's (`guest-sdk/`) and every bundled and test policy's (`policies/`),
//! natively, against the SDK's in-process mock host. Both are workspaces of
//! their own (host/build.rs builds them for wasm32-wasip2), so the root
//! workspace cannot list them as members; this runs their suites instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `cargo test --workspace` in `dir`, with its own target directory so it
/// never waits on the lock of the outer build's.
fn cargo_test(dir: &str) {
    let repo = repo();
    let output = Command::new(env!("CARGO"))
        .args(["test", "--workspace", "--quiet", "--target-dir"])
        .arg(repo.join("target").join("guest-native"))
        .current_dir(repo.join(dir))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo test in {dir} failed:\n{stdout}\n{stderr}"
    );
    let passed: u32 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<u32>().ok())
        .sum();
    assert!(passed > 0, "no test ran in {dir}:\n{stdout}");
    eprintln!("{dir}: {passed} tests passed");
}

#[test]
fn guest_sdk_suite_passes() {
    cargo_test("guest-sdk");
}

#[test]
fn policies_suite_passes() {
    cargo_test("policies");
}
