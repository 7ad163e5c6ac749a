#!/usr/bin/env bash
# Memory of idle tenants: VmRSS of a fresh node with TENANTS tenants, each
# with its own loaded policy, against the same node with none.
#
#   bench/tenants_memory.sh                 # build release, then ~2 minutes
#   SKIP_BUILD=1 TENANTS=100 bench/tenants_memory.sh
#
# Two layouts, both with a hosted-pbx dial plan of its own per tenant:
#   shared    every tenant loads builtin:hosted-pbx: one compiled module,
#             one published version and one warm instance per tenant (the
#             hosted-PBX case: one product, many customers)
#   distinct  every tenant loads a different file (hosted_pbx.wasm with its
#             own custom section, so its own content hash): one compiled
#             module per tenant as well
# Reading: VmRSS 3 s after the node's UDP socket is bound (all policies are
# loaded before it binds). Everything on 127.0.0.50; stops what it starts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TENANTS=${TENANTS:-100}
ADDR=127.0.0.50
PORT=5060
BIN="$ROOT/target/release/switchyard"
WASM="$ROOT/target/wasm-policies/wasm32-wasip2/release/hosted_pbx.wasm"
WORK=$(mktemp -d /tmp/switchyard-tenants.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building switchyard (release)"
    (cd "$ROOT" && cargo build --release -p switchyard >"$WORK/build.log" 2>&1)
fi
[[ -x $BIN && -s $WASM ]] || { echo "build first: cargo build --release -p switchyard" >&2; exit 1; }

config() { # config LAYOUT N FILE
    local layout=$1 n=$2 i module
    {
        echo "[admin]"
        echo "listen = \"$ADDR:9060\""
        echo "[tenants]"
        echo 'default = "t0"'
        echo "[tenants.domains]"
        for ((i = 0; i < n; i++)); do echo "\"t$i.test\" = \"t$i\""; done
        for ((i = 0; i < n; i++)); do
            if [[ $layout == shared ]]; then
                module="builtin:hosted-pbx"
            else
                module="$WORK/pbx-$i.wasm"
            fi
            echo "[tenants.policies.t$i]"
            echo "module = \"$module\""
            echo "[tenants.policies.t$i.config.extensions]"
            echo "\"101\" = \"alice$i\""
            echo "\"102\" = \"bob$i\""
        done
    } >"$3"
}

rss_of() { # rss_of CONFIG -> "rss_bytes startup_seconds"
    local t0 t1 pid rss
    wait_port_free "$ADDR" "$PORT" || { log "$ADDR:$PORT busy"; return 1; }
    t0=$(date +%s.%N)
    "$BIN" run --no-auth --config "$1" --listen "udp:$ADDR:$PORT" --log warn >"$WORK/node.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_udp_bound "$ADDR" "$PORT" 30000 || { log "node did not start"; tail -5 "$WORK/node.log" >&2; return 1; }
    t1=$(date +%s.%N)
    sleep 3
    rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid/status")
    stop_pid "$pid"
    echo "$rss $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
}

for ((i = 0; i < TENANTS; i++)); do
    python3 "$ROOT/bench/wasm_pad.py" "$WASM" "$WORK/pbx-$i.wasm" --tag "tenant-$i"
done
config shared 0 "$WORK/none.toml"
config shared "$TENANTS" "$WORK/shared.toml"
config distinct "$TENANTS" "$WORK/distinct.toml"

read -r base base_t <<<"$(rss_of "$WORK/none.toml")"
log "no tenant policy: $((base / 1024)) KiB, up in ${base_t}s"
printf '%-10s %8s %12s %12s %16s %10s\n' layout tenants "VmRSS" "delta" "per tenant" "start-up"
printf '%-10s %8s %9s KiB %12s %16s %9ss\n' none 0 $((base / 1024)) - - "$base_t"
for layout in shared distinct; do
    read -r rss t <<<"$(rss_of "$WORK/$layout.toml")"
    printf '%-10s %8s %9s KiB %8s KiB %12s KiB %9ss\n' "$layout" "$TENANTS" $((rss / 1024)) $(((rss - base) / 1024)) \
        "$(awk -v d=$((rss - base)) -v n="$TENANTS" 'BEGIN { printf "%.0f", d / n / 1024 }')" "$t"
done
echo "(target: < 2048 KiB per idle tenant)"
