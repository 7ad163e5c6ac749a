#!/usr/bin/env bash
# A flood from forged source addresses while real calls go on: the issue's
# "20,000 spoofed-source INVITEs/s at one node for 10 s while a legitimate
# SIPp call load runs; legitimate calls >= 95% successful, memory bounded,
# node alive".
#
#   bench/flood.sh                            # both kinds, ~1 minute
#   KINDS=stranger FLOOD_RATE=30000 bench/flood.sh
#
# Uses the existing target/release/switchyard (BIN=... for another); builds
# nothing. One release node with its defaults ([auth] on, per-source rate
# limit 2000/s) except `rate_limit_exempt = []`, so loopback sources are
# limited like any others. Per KIND:
#   ours      INVITEs whose From is the node's own domain (toll fraud):
#             each is challenged 407, statelessly and once.
#   stranger  INVITEs from another domain to a number of ours nobody has
#             (a scan): each gets 100 Trying and one 404, no retransmission.
# The flood is SIPp's uac_flood.xml with `-t ui`: every INVITE from the
# next of FLOOD_SOURCES addresses in 127.66.0.0/16, so no source is over
# the per-source limit and the node has to take all of it (what a forged-
# source flood does; SIPp holds the addresses' sockets, but nothing answers
# or acknowledges). Meanwhile CALL_RATE calls/s of authenticated calls
# (uac_call_auth.xml: INVITE -> 407 -> INVITE with credentials -> 180/200
# -> ACK -> BYE) from USERS subscribers to a registered SIPp UAS, starting
# LEAD_SECS before the flood and ending after it.
# Reports the offered flood rate, the legitimate calls' success, the node's
# RSS before and at its highest (sampled every 200 ms), its counters, and
# whether it still answers OPTIONS afterwards.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN="$ROOT/tests/sipp"
BIN=${BIN:-"$ROOT/target/release/switchyard"}
DOMAIN=bench.test
KINDS=${KINDS:-"ours stranger"}
FLOOD_RATE=${FLOOD_RATE:-20000}
FLOOD_SECS=${FLOOD_SECS:-10}
FLOOD_SOURCES=${FLOOD_SOURCES:-4096}
CALL_RATE=${CALL_RATE:-100}
LEAD_SECS=${LEAD_SECS:-2}
USERS=${USERS:-2000}
CALLEE=callee
MAX_FAIL_PPM=1000
MIN_ACHIEVED_PCT=95
BISECT=0

SY_ADDR=127.0.0.13
PORT=5060
ADMIN=127.0.0.13:9101
UAC_IP=127.0.0.47
UAS_IP=127.0.0.38
UAS_PORT=5070

WORK=$(mktemp -d /tmp/switchyard-bench-flood.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP:-}" ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v sipp >/dev/null || { echo "sipp not found: bash tests/install-tools.sh" >&2; exit 1; }
command -v sipsak >/dev/null || { echo "sipsak not found: bash tests/install-tools.sh" >&2; exit 1; }
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release -p switchyard" >&2; exit 1; }
# One socket per forged address, plus SIPp's own.
ulimit -n $((FLOOD_SOURCES + 4096)) 2>/dev/null || true

write_users
cat "$WORK/auth.toml" >"$WORK/flood.toml"
cat >>"$WORK/flood.toml" <<TOML
[limits]
rate_limit_exempt = []

[admin]
listen = "$ADMIN"
TOML
awk -v n="$FLOOD_SOURCES" 'BEGIN { print "SEQUENTIAL"
    for (i = 0; i < n; i++) printf "127.66.%d.%d;\n", int(i / 250), i % 250 + 1 }' >"$WORK/sources.csv"

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# sample_rss PID FILE: the highest VmRSS (KiB) until PID ends or FILE.stop exists
sample_rss() {
    local pid=$1 file=$2 max=0 r
    while kill -0 "$pid" 2>/dev/null && [[ ! -e $file.stop ]]; do
        r=$(rss_kib "$pid")
        ((r > max)) && max=$r && echo "$max" >"$file"
        sleep 0.2
    done
}
metric() { # NAME -> its value on /metrics (0 when absent)
    curl -s "http://$ADMIN/metrics" | awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }'
}

flood_run() {
    local kind=$1 from_domain
    case $kind in
        ours) from_domain=$DOMAIN ;;
        stranger) from_domain=elsewhere.test ;;
        *) log "unknown kind $kind"; return 1 ;;
    esac
    wait_port_free "$SY_ADDR" "$PORT" || { log "$SY_ADDR:$PORT is taken"; return 1; }
    "$BIN" run --config "$WORK/flood.toml" --listen "udp:$SY_ADDR:$PORT" \
        --domain "$DOMAIN" --log warn >"$WORK/node-$kind.log" 2>&1 &
    local node=$!
    PIDS+=("$node")
    wait_udp_bound "$SY_ADDR" "$PORT" || { log "node did not start"; tail -5 "$WORK/node-$kind.log" >&2; return 1; }
    sipp -sf "$SCEN/uas_answer.xml" -i "$UAS_IP" -p "$UAS_PORT" \
        -nostdin -bind_local -buff_size 4194304 -max_recv_loops 10000 -max_sched_loops 10000 \
        >/dev/null 2>"$WORK/uas-$kind.stderr" &
    local uas=$!
    PIDS+=("$uas")
    wait_udp_bound "$UAS_IP" "$UAS_PORT" || { log "UAS did not start"; return 1; }
    local res ok failed elapsed
    res=$(run_uac "bind-$kind" "$SY_ADDR" "$SCEN/uac_register_auth.xml" 10 1 -auth_uri "$DOMAIN" \
        -inf "$WORK/callee.csv" -key domain "$DOMAIN" -key uas "$UAS_IP:$UAS_PORT" -key expires 3600 -p 5080)
    read -r ok _ <<<"$res"
    [[ $ok == 1 ]] || { log "could not register the callee"; return 1; }

    local rss0 rssfile="$WORK/rss-$kind"
    rss0=$(rss_kib "$node")
    echo "$rss0" >"$rssfile"
    sample_rss "$node" "$rssfile" &
    local sampler=$!

    # The legitimate calls span the flood: LEAD_SECS before, as long after.
    local calls=$((CALL_RATE * (FLOOD_SECS + 2 * LEAD_SECS)))
    run_uac "legit-$kind" "$SY_ADDR" "$SCEN/uac_call_auth.xml" "$CALL_RATE" "$calls" \
        -auth_uri "$CALLEE@$DOMAIN" -inf "$WORK/calls.csv" -key domain "$DOMAIN" -d 20 -p 5081 \
        >"$WORK/legit-$kind.res" &
    local legit=$!
    sleep "$LEAD_SECS"

    local invites=$((FLOOD_RATE * FLOOD_SECS)) t0 t1
    t0=$(date +%s.%N)
    timeout $((FLOOD_SECS * 3 + 30)) sipp "$SY_ADDR:$PORT" -sf "$SCEN/uac_flood.xml" \
        -t ui -inf "$WORK/sources.csv" -max_socket $((FLOOD_SOURCES + 1024)) \
        -r "$FLOOD_RATE" -m "$invites" -l "$FLOOD_RATE" \
        -key domain "$DOMAIN" -key from_domain "$from_domain" -key target nobody -nr \
        -nostdin -buff_size 4194304 -max_recv_loops 10000 -max_sched_loops 10000 \
        -trace_stat -stf "$WORK/flood-$kind.stat" -fd 3600 \
        >/dev/null 2>"$WORK/flood-$kind.stderr" || true
    t1=$(date +%s.%N)
    wait "$legit" || true
    read -r ok failed elapsed _ <"$WORK/legit-$kind.res"
    touch "$rssfile.stop"
    wait "$sampler" 2>/dev/null || true

    local sent offered alive=no
    sent=$(stat "$WORK/flood-$kind.stat" 'OutgoingCall(C)')
    offered=$(awk -v n="$sent" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    if timeout 5 sipsak -s "sip:ping@$SY_ADDR:$PORT" >/dev/null 2>&1; then alive=yes; fi
    local pct
    pct=$(awk -v o="$ok" -v f="$failed" 'BEGIN { t = o + f; printf "%.2f", t ? 100 * o / t : 0 }')
    echo "| $kind | $sent in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s ($offered/s) | $ok / $((ok + failed)) ($pct %) | $((rss0 / 1024)) → $(($(cat "$rssfile") / 1024)) MiB | $(metric switchyard_auth_challenges_total) | $(metric switchyard_rate_limited_total) | $alive |"
    stop_pid "$uas"
    stop_pid "$node"
}

log "flood: $FLOOD_RATE INVITE/s for ${FLOOD_SECS}s from $FLOOD_SOURCES addresses; legit $CALL_RATE calls/s"
echo
echo "| kind | flood INVITEs sent | legitimate calls ok | node RSS before → max | 407s sent | rate-limited | OPTIONS after |"
echo "|---|---|---|---|---|---|---|"
for kind in $KINDS; do flood_run "$kind"; done
