#!/usr/bin/env bash
# Hot swap: time from `switchyard policy load` to the new version serving,
# for a 1 MiB module (hosted_pbx.wasm padded with a custom section).
#
#   bench/policy_swap.sh                 # build release first
#   SKIP_BUILD=1 RUNS=10 bench/policy_swap.sh
#
#   cold   bytes never seen by the node (a new padding each run): compile,
#          import check, instantiate, init, smoke call, publish
#   warm   bytes compiled before (loaded once untimed): the compile cache
#          hits, the rest is the same
#   disk   a fresh node with [policy] cache_dir holding the .cwasm from an
#          earlier node: the first load of those bytes on that node
# Each row gives the median over RUNS of two figures: the node's own
# ("live after", from the request's arrival to the version published) and
# the CLI's wall time (process start, reading the file, HTTP upload
# included). Everything on 127.0.0.51; stops what it starts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-7}
SIZE=${SIZE:-1048576}
ADDR=127.0.0.51
PORT=5060
ADMIN=$ADDR:9060
BIN="$ROOT/target/release/switchyard"
WASM="$ROOT/target/wasm-policies/wasm32-wasip2/release/hosted_pbx.wasm"
WORK=$(mktemp -d /tmp/switchyard-swap.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building switchyard (release)"
    (cd "$ROOT" && cargo build --release -p switchyard >"$WORK/build.log" 2>&1)
fi
[[ -x $BIN && -s $WASM ]] || { echo "build first: cargo build --release -p switchyard" >&2; exit 1; }

start_node() { # start_node [cache_dir]
    {
        echo "[admin]"
        echo "listen = \"$ADMIN\""
        [[ -n ${1:-} ]] && { echo "[policy]"; echo "cache_dir = \"$1\""; }
        echo "[tenants]"
        echo 'default = "acme"'
        echo "[tenants.policies.acme]"
        echo 'module = "builtin:default"'
    } >"$WORK/node.toml"
    wait_port_free "$ADDR" "$PORT" || { log "$ADDR:$PORT busy"; exit 1; }
    "$BIN" run --no-auth --config "$WORK/node.toml" --listen "udp:$ADDR:$PORT" --log warn >>"$WORK/node.log" 2>&1 &
    NODE=$!
    PIDS+=("$NODE")
    wait_udp_bound "$ADDR" "$PORT" 3000 || { log "node did not start"; tail -5 "$WORK/node.log" >&2; exit 1; }
}

pad() { python3 "$ROOT/bench/wasm_pad.py" "$WASM" "$1" --size "$SIZE" --tag "$2"; }

# load FILE -> "node_ms wall_ms", and checks the listing shows the new version
load() {
    local t0 t1 out want
    t0=$(date +%s%N)
    out=$("$BIN" policy load --admin "$ADMIN" --tenant acme "$1")
    t1=$(date +%s%N)
    want=$(sha256sum "$1" | cut -c1-12)
    "$BIN" policy list --admin "$ADMIN" | grep -q "^acme .*${want}" ||
        { log "listing does not show version $want after: $out"; "$BIN" policy list --admin "$ADMIN" >&2; exit 1; }
    echo "$(sed -E 's/.* live after ([0-9.]+) ms/\1/' <<<"$out") $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

row() { # row NAME FILE_OF_PAIRS
    printf '%-6s %12s %12s\n' "$1" "$(awk '{ print $1 }' "$2" | median)" "$(awk '{ print $2 }' "$2" | median)"
}

start_node "$WORK/cache"
log "$(wc -c <"$WASM") B hosted_pbx.wasm padded to $SIZE B; $RUNS runs each"
for ((i = 0; i < RUNS; i++)); do
    pad "$WORK/cold-$i.wasm" "cold-$i"
    load "$WORK/cold-$i.wasm" >>"$WORK/cold"
done
pad "$WORK/warm.wasm" warm
load "$WORK/warm.wasm" >/dev/null # compile once
pad "$WORK/other.wasm" other
load "$WORK/other.wasm" >/dev/null
for ((i = 0; i < RUNS; i++)); do
    # Alternate so each load is a real swap to another version.
    load "$WORK/warm.wasm" >>"$WORK/warm"
    load "$WORK/other.wasm" >/dev/null
done
stop_pid "$NODE"
for ((i = 0; i < RUNS; i++)); do
    start_node "$WORK/cache" # the cache holds cold-$i from the first node
    load "$WORK/cold-$i.wasm" >>"$WORK/disk"
    stop_pid "$NODE"
done

printf '%-6s %12s %12s\n' "" "node ms" "CLI wall ms"
row cold "$WORK/cold"
row warm "$WORK/warm"
row disk "$WORK/disk"
echo "(medians of $RUNS; target: warm < 100 ms for a 1 MiB module)"
