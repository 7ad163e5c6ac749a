#!/usr/bin/env bash
# Installs the real SIP tools the end-to-end tests drive, from Debian's
# packages, when they are missing: SIPp, sipsak, dnsmasq (the RFC 3263
# tests' DNS server), the softphones baresip and linphonec, the password
# cracker svcrack (sipvicious) the throttling test runs, stunnel (TLS in
# front of SIPp, whose Debian build has none), and for the browser phones
# Node.js, Chromium and the pinned npm packages of tests/browser. Needs root
# (or sudo) and apt; does nothing when everything is there already.
set -euo pipefail

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v sipsak >/dev/null 2>&1 || need+=(sipsak)
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
command -v linphonec >/dev/null 2>&1 || need+=(linphone-cli)
command -v svcrack >/dev/null 2>&1 || need+=(sipvicious)
command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash "$(dirname "$0")/browser/install.sh"

# cargo-deb, which tests/e2e/package_deb.rs packages the Debian package with
# (`cargo deb -p switchyard`), from crates.io: pinned to a version checked to
# build with the project's Rust 1.95 (about 1.5 min on 2 cores).
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    echo "installing cargo-deb $cargo_deb_version" >&2
    cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
fi
