#!/usr/bin/env bash
# Installs the real SIP tools the end-to-end tests drive, from Debian's
# packages, when they are missing: SIPp, sipsak, dnsmasq (the RFC 3263
# tests' DNS server), the softphones baresip and linphonec, the password
# cracker svcrack (sipvicious) the throttling test runs, stunnel (TLS in
# front of SIPp, whose Debian build has none), sngrep and tshark and
# sipcapture's hep-js (decode the HEP export), and for the browser phones
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
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v sngrep >/dev/null 2>&1 || need+=(sngrep)

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # tshark (the HEP test's decoder) asks whether non-root users may capture.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | "${sudo[@]}" debconf-set-selections
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash "$(dirname "$0")/browser/install.sh"
# hep-js, sipcapture's HEP3 decoder (tests/e2e/hep.rs), pinned in tests/hep.
hep="$(dirname "$0")/hep"
if [ ! -f "$hep/node_modules/.package-lock.json" ] || [ "$hep/package-lock.json" -nt "$hep/node_modules/.package-lock.json" ]; then
    (cd "$hep" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$hep/node_modules/.package-lock.json"
fi

# cargo-deb, which tests/e2e/package_deb.rs packages the Debian package with
# (`cargo deb -p switchyard`), from crates.io: pinned to a version checked to
# build with the project's Rust 1.95 (about 1.5 min on 2 cores).
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    echo "installing cargo-deb $cargo_deb_version" >&2
    cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
fi
