#!/usr/bin/env bash
# Installs what the browser-phone harness (tests/browser/run.mjs) needs:
# Debian's chromium + chromium-driver when /usr/bin/chromium is missing (root
# or sudo, apt), and the pinned npm packages (npm ci) when node_modules is
# missing or older than package-lock.json. Quiet and idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing chromium chromium-driver" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq chromium chromium-driver >/dev/null
fi

stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install.sh: npm not found" >&2; exit 1; }
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  touch "$stamp"
fi
