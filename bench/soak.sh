#!/usr/bin/env bash
# Soak: calls at a steady rate for a long time through one node running the
# bundled `default` WebAssembly policy on every initial request (issue 18:
# 10 minutes at 80% of the maximum call rate, 0 failed calls, RSS flat,
# no UDP receive-buffer drops).
#
#   SKIP_BUILD=1 bash bench/soak.sh                 # 4800 calls/s for 600 s
#   RATE=4000 SECS=120 SKIP_BUILD=1 bash bench/soak.sh
#
# Prints RSS every SAMPLE seconds, then: calls ok/failed (SIPp's own
# count), the machine's UDP receive-buffer drops over the run, RSS at the
# end of the first minute and at the end, and the growth between them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source bench/lib.sh
[[ -n ${SKIP_BUILD:-} ]] || cargo build --release -p switchyard -q
BIN=${BIN:-target/release/switchyard}
RATE=${RATE:-4800}; SECS=${SECS:-600}; SAMPLE=${SAMPLE:-10}; USERS=${USERS:-10000}
SY_ADDR=127.0.0.70; PORT=5060; UAC_IP=127.0.0.71; UAS=127.0.0.72; UAS_PORT=5070
DOMAIN=bench.test; SCEN=$ROOT/tests/sipp
PIDS=(); WORK=$(mktemp -d /tmp/switchyard-soak.XXXXXX)
trap 'for p in "${PIDS[@]}"; do stop_pid "$p"; done; [[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT

printf '[tenants]\ndefault = "bench"\n[tenants.policies.bench]\nmodule = "builtin:default"\n' >"$WORK/wasm.toml"
"$BIN" run --no-auth --config "$WORK/wasm.toml" --listen "udp:$SY_ADDR:$PORT" --domain "$DOMAIN" --log warn \
    >"$WORK/node.log" 2>&1 &
node=$!; PIDS+=("$node")
wait_udp_bound "$SY_ADDR" "$PORT"
sipp -sf "$SCEN/uas_answer.xml" -i "$UAS" -p "$UAS_PORT" -nostdin -bind_local -buff_size 4194304 \
    -max_recv_loops 10000 -max_sched_loops 10000 -trace_err -error_file "$WORK/uas.err" >/dev/null 2>&1 &
PIDS+=($!)
wait_udp_bound "$UAS" "$UAS_PORT"
users_csv "$WORK/users.csv" "$USERS"
run_uac bind "$SY_ADDR" "$SCEN/uac_register.xml" 4000 "$USERS" \
    -inf "$WORK/users.csv" -key domain "$DOMAIN" -key uas "$UAS:$UAS_PORT" -key expires 3600 -p 5080 >/dev/null

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$node/status"; }
log "soak: $RATE calls/s for ${SECS}s through $SY_ADDR (default WASM policy)"
run_uac soak "$SY_ADDR" "$SCEN/uac_call.xml" "$RATE" $((RATE * SECS)) \
    -inf "$WORK/users.csv" -key domain "$DOMAIN" -d 20 -p 5081 >"$WORK/result" &
load=$!
t=0; rss_minute=""
while kill -0 "$load" 2>/dev/null; do
    sleep "$SAMPLE"; t=$((t + SAMPLE))
    kill -0 "$load" 2>/dev/null || break
    r=$(rss); echo "t=${t}s rss=${r} kB"
    ((t == 60)) && rss_minute=$r
    last=$r
done
wait "$load"
read -r ok failed elapsed drops <"$WORK/result"
echo "calls: $ok ok, $failed failed in ${elapsed}s (offered $((RATE * SECS)) at $RATE/s); UDP rcvbuf drops: $drops"
echo "rss after the first minute ${rss_minute:-?} kB, at the end ${last:-?} kB: growth $(awk -v a="${rss_minute:-0}" -v b="${last:-0}" 'BEGIN { if (a > 0) printf "%.1f%%", (b - a) * 100 / a; else print "?" }')"
