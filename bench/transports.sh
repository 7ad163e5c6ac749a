#!/usr/bin/env bash
# Switchyard vs Kamailio 5.6 (with its tls module) over UDP, TCP and TLS,
# in one run, plus the memory of an idle connection per transport.
#
#   bench/transports.sh                      # build switchyard (release), run all
#   SKIP_BUILD=1 bench/transports.sh         # use target/release/switchyard
#   PHASES="calls" TRANSPORTS="udp tls" bench/transports.sh
#
# Phases:
#   calls     the highest call rate (INVITE -> 180 -> 200 -> ACK -> BYE -> 200,
#             record-routed, to a SIPp UAS registered over UDP) at which < 0.1%
#             fail and >= 95% of the rate is achieved, with the caller's leg
#             over each of TRANSPORTS. TCP and TLS calls share one connection
#             (SIPp -t t1): handshakes are amortised, as with a trunk or a PBX.
#   register  REGISTER/s over TLS with CONNS persistent connections, opened
#             before the clock starts (tests/src/bin/tls_load.rs): the
#             desk-phone case.
#   memory    switchyard only: bytes of RSS per idle connection (TCP, TLS, WS,
#             WSS), N connections each set up like a phone's and carrying one
#             answered OPTIONS (bench/conn_memory.py), a fresh node each time,
#             median of MEM_ROUNDS.
# Kamailio with TLS runs one TCP/TLS worker (bench/kamailio.cfg explains).
# TLS: Debian's SIPp has no TLS, so SIPp speaks TCP to Debian's stunnel,
# which opens the TLS connections (verifying the proxy's certificate). The
# proxies see real TLS clients; stunnel's CPU shares the two cores with
# everything else, so TLS figures are lower bounds for both proxies alike.
# Everything is on 127.0.0.x; every process started here is stopped on exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN="$ROOT/tests/sipp"
DOMAIN=bench.test
TARGETS=${TARGETS:-"switchyard kamailio"}
TRANSPORTS=${TRANSPORTS:-"udp tcp tls"}
PHASES=${PHASES:-"calls register memory"}
STEP_SECS=${STEP_SECS:-5}
BISECT=${BISECT:-3}
CALL_START=${CALL_START:-250}
CALL_MAX=${CALL_MAX:-16000}
REG_START=${REG_START:-500}
REG_MAX=${REG_MAX:-32000}
CONNS=${CONNS:-1000}
USERS=${USERS:-10000}
CALL_HOLD_MS=${CALL_HOLD_MS:-20}
MEM_CONNS=${MEM_CONNS:-2000}
MEM_ROUNDS=${MEM_ROUNDS:-3}
MAX_FAIL_PPM=1000
MIN_ACHIEVED_PCT=95

SY_ADDR=127.0.0.10
KAM_ADDR=127.0.0.20
PORT=5060
TLS_PORT=5061
UAC_IP=127.0.0.40
TUNNEL_PORT=6061
declare -A UAS_IP=([switchyard]=127.0.0.30 [kamailio]=127.0.0.31)
UAS_PORT=5070

WORK=$(mktemp -d /tmp/switchyard-transports.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -n ${KEEP:-} ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

make_certs() {
    (
        cd "$WORK"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout ca.key -out ca.pem -subj "/CN=bench CA" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout node.key -out node.csr -subj "/CN=bench node" 2>/dev/null
        printf 'subjectAltName=IP:%s,IP:%s\n' "$SY_ADDR" "$KAM_ADDR" >san.ext
        openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile san.ext -out node.pem 2>/dev/null
    )
    cat >"$WORK/kam-tls.cfg" <<EOF
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = $WORK/node.pem
private_key = $WORK/node.key

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
EOF
}

sy_config() { # sy_config FILE [extra listeners...]
    local file=$1 l
    shift
    {
        printf 'listen = ["udp:%s:%s", "tcp:%s:%s", "tls:%s:%s"' "$SY_ADDR" "$PORT" "$SY_ADDR" "$PORT" "$SY_ADDR" "$TLS_PORT"
        for l in "$@"; do printf ', "%s"' "$l"; done
        printf ']\ndomains = ["%s"]\n[admin]\nlisten = "off"\n' "$DOMAIN"
        printf '[tls]\ncert = "%s"\nkey = "%s"\nwatch = false\n' "$WORK/node.pem" "$WORK/node.key"
    } >"$file"
}

# start_proxy TARGET [tls] -> PROXY_PID, PROXY_ADDR. Kamailio gets its tls
# module only when asked: with it, it runs one TCP/TLS worker instead of two
# (see the WITH_TLS block of bench/kamailio.cfg), which its UDP and TCP
# figures should not pay for.
start_proxy() {
    local tls=${2:-}
    case $1 in
        switchyard)
            PROXY_ADDR=$SY_ADDR
            wait_port_free "$PROXY_ADDR" "$PORT" || return 1
            "$ROOT/target/release/switchyard" run --no-auth --config "$WORK/sy.toml" --log warn \
                >"$WORK/switchyard.log" 2>&1 &
            ;;
        kamailio)
            PROXY_ADDR=$KAM_ADDR
            wait_port_free "$PROXY_ADDR" "$PORT" || return 1
            local with_tls=()
            [[ -n $tls ]] && with_tls=(-A WITH_TLS -A "TLS_PORT=$TLS_PORT" -A "TLS_CFG=\"$WORK/kam-tls.cfg\"")
            kamailio -f "$ROOT/bench/kamailio.cfg" -DD -E -m 256 -M 16 -n 2 \
                -A "LISTEN_IP=$KAM_ADDR" -A "LISTEN_PORT=$PORT" "${with_tls[@]}" >"$WORK/kamailio.log" 2>&1 &
            ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_udp_bound "$PROXY_ADDR" "$PORT" && { [[ -z $tls ]] || wait_tcp_bound "$PROXY_ADDR" "$TLS_PORT"; } || {
        log "$1 did not start"
        tail -5 "$WORK/$1.log" >&2
        stop_pid "$PROXY_PID"
        return 1
    }
}

# SIPp's TCP to TLS: accepts on UAC_IP:TUNNEL_PORT, connects to the proxy's
# TLS port from UAC_IP (so the Via address is the flow's), verifying its
# certificate.
start_tunnel() {
    cat >"$WORK/stunnel.conf" <<EOF
foreground = yes
pid =
debug = warning
[sip]
client = yes
accept = $UAC_IP:$TUNNEL_PORT
connect = $PROXY_ADDR:$TLS_PORT
local = $UAC_IP
CAfile = $WORK/ca.pem
verifyChain = yes
checkIP = $PROXY_ADDR
sslVersionMin = TLSv1.2
EOF
    stunnel4 "$WORK/stunnel.conf" >"$WORK/stunnel.log" 2>&1 &
    TUNNEL_PID=$!
    PIDS+=("$TUNNEL_PID")
    wait_tcp_bound "$UAC_IP" "$TUNNEL_PORT" || { log "stunnel did not start"; cat "$WORK/stunnel.log" >&2; return 1; }
}


# The caller's connection: the proxy itself (UDP, TCP) or the tunnel (TLS).
uac_leg() { # TRANSPORT -> sets LEG_ADDR LEG_PORT LEG_FLAGS
    case $1 in
        udp) LEG_ADDR=$PROXY_ADDR LEG_PORT=$PORT LEG_FLAGS=(-t u1) ;;
        tcp) LEG_ADDR=$PROXY_ADDR LEG_PORT=$PORT LEG_FLAGS=(-t t1) ;;
        tls) start_tunnel && LEG_ADDR=$UAC_IP LEG_PORT=$TUNNEL_PORT LEG_FLAGS=(-t t1) ;;
    esac
}

call_step() {
    local rate=$1 calls res ok failed elapsed
    calls=$((rate * STEP_SECS))
    start_proxy "$TARGET" "$([[ $TRANSPORT == tls ]] && echo tls)" || return 1
    start_uas || { stop_pid "$PROXY_PID"; return 1; }
    run_uac "bind-$TARGET" "$PROXY_ADDR" "$SCEN/uac_register.xml" 4000 "$USERS" \
        -inf "$WORK/users.csv" -key domain "$DOMAIN" -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080 >/dev/null
    TUNNEL_PID=
    uac_leg "$TRANSPORT" || { stop_pid "$UAS_PID"; stop_pid "$PROXY_PID"; return 1; }
    res=$(PORT=$LEG_PORT run_uac "call-$TARGET-$TRANSPORT-$rate" "$LEG_ADDR" "$SCEN/uac_call.xml" "$rate" "$calls" \
        -inf "$WORK/users.csv" -key domain "$DOMAIN" -d "$CALL_HOLD_MS" -p 5081 "${LEG_FLAGS[@]}")
    [[ -n $TUNNEL_PID ]] && stop_pid "$TUNNEL_PID"
    stop_pid "$UAS_PID"
    stop_pid "$PROXY_PID"
    read -r ok failed elapsed drops <<<"$res"
    if verdict "$rate" "$calls" "$ok" "$failed" "$elapsed"; then
        log "  $TRANSPORT calls $rate/s: $ok ok, $failed failed in ${elapsed}s: pass"
        return 0
    fi
    log "  $TRANSPORT calls $rate/s: $ok ok, $failed failed in ${elapsed}s: FAIL"
    return 1
}

# TLS REGISTER over CONNS persistent connections: tests/src/bin/tls_load.rs
# (SIPp has no TLS, and SIPp -t tn through stunnel measured stunnel's
# thread per connection). All connections are open and their handshakes
# done before the clock starts; REGISTERs are then spread evenly over them.
register_step() {
    local rate=$1 res sent ok failed lost achieved
    start_proxy "$TARGET" tls || return 1
    res=$(timeout $((STEP_SECS + 60)) "$LOAD" "$PROXY_ADDR:$TLS_PORT" "$WORK/ca.pem" "$UAC_IP" \
        "$CONNS" "$rate" "$STEP_SECS" "$DOMAIN" 2>"$WORK/load-$TARGET-$rate.stderr" || echo '{}')
    stop_pid "$PROXY_PID"
    read -r sent ok failed lost achieved < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1] or "{}")
print(*(r.get(k, 0) for k in ("sent", "ok", "failed", "unanswered", "achieved")))' "$res")
    if ((sent > 0)) && awk -v r="$rate" -v ok="$ok" -v bad=$((failed + lost)) -v a="$achieved" \
        -v ppm="$MAX_FAIL_PPM" -v pct="$MIN_ACHIEVED_PCT" \
        'BEGIN { exit !(bad * 1e6 <= ppm * (ok + bad) && a >= r * pct / 100) }'; then
        log "  TLS REGISTER $rate/s over $CONNS connections: $ok ok, $failed failed, $lost unanswered ($achieved/s): pass"
        return 0
    fi
    log "  TLS REGISTER $rate/s over $CONNS connections: $ok ok, $failed failed, $lost unanswered ($achieved/s): FAIL"
    return 1
}


memory_phase() {
    local t kind port runs r pid out
    sy_config "$WORK/sy-mem.toml" "ws:$SY_ADDR:8080" "wss:$SY_ADDR:8443"
    for t in tcp:5060 tls:5061 ws:8080 wss:8443; do
        kind=${t%%:*} port=${t##*:} runs=""
        for ((r = 0; r < MEM_ROUNDS; r++)); do
            "$ROOT/target/release/switchyard" run --no-auth --config "$WORK/sy-mem.toml" --log warn \
                >"$WORK/mem.log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            wait_tcp_bound "$SY_ADDR" 8443 || { log "no node for the memory phase"; return 1; }
            out=$(python3 "$ROOT/bench/conn_memory.py" "$pid" "$kind" "$SY_ADDR:$port" "$MEM_CONNS")
            runs+="${out##* } "
            stop_pid "$pid"
        done
        MEM[$kind]=$(echo "$runs" | median)
        log "  idle $kind connection: ${MEM[$kind]} B (runs: $runs)"
    done
}

# --- main -----------------------------------------------------------------

for tool in sipp stunnel4 kamailio python3 openssl; do
    command -v "$tool" >/dev/null || { echo "$tool not found (tests/install-tools.sh installs the SIP tools)" >&2; exit 1; }
done
[[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ]] ||
    { echo "Kamailio's tls module is missing: apt-get install kamailio-tls-modules" >&2; exit 1; }
ulimit -n 20000
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building switchyard and tls_load (release)"
    (cd "$ROOT" && cargo build --release -p switchyard -p switchyard-tests --bin switchyard --bin tls_load >"$WORK/build.log" 2>&1)
fi
LOAD="$ROOT/target/release/tls_load"
make_certs
sy_config "$WORK/sy.toml"
users_csv "$WORK/users.csv" "$USERS"
declare -A CALLS REG MEM
START=$SECONDS
if [[ " $PHASES " == *" calls "* ]]; then
    for TARGET in $TARGETS; do
        for TRANSPORT in $TRANSPORTS; do
            log "== $TARGET: calls with the caller on $TRANSPORT"
            ramp "$CALL_START" "$CALL_MAX" call_step
            CALLS[$TARGET:$TRANSPORT]=$RAMP_RESULT
        done
    done
fi
if [[ " $PHASES " == *" register "* ]]; then
    for TARGET in $TARGETS; do
        log "== $TARGET: TLS REGISTER over $CONNS connections"
        ramp "$REG_START" "$REG_MAX" register_step
        REG[$TARGET]=$RAMP_RESULT
    done
fi
[[ " $PHASES " == *" memory "* ]] && memory_phase

echo
echo "Switchyard vs Kamailio 5.6 by transport ($(nproc) cores, ${STEP_SECS}s steps, fail < 0.1%, TLS via stunnel; $((SECONDS - START)) s)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }
if [[ " $PHASES " == *" calls "* ]]; then
    printf '%-22s %12s %12s %8s\n' "calls/s, caller on" switchyard kamailio ratio
    for TRANSPORT in $TRANSPORTS; do
        printf '%-22s %12s %12s %8s\n' "$TRANSPORT" "${CALLS[switchyard:$TRANSPORT]:--}" \
            "${CALLS[kamailio:$TRANSPORT]:--}" "$(ratio "${CALLS[switchyard:$TRANSPORT]:-0}" "${CALLS[kamailio:$TRANSPORT]:-0}")"
    done
fi
if [[ " $PHASES " == *" register "* ]]; then
    printf '%-22s %12s %12s %8s\n' "TLS REGISTER/s ($CONNS)" "${REG[switchyard]:--}" "${REG[kamailio]:--}" \
        "$(ratio "${REG[switchyard]:-0}" "${REG[kamailio]:-0}")"
fi
if [[ " $PHASES " == *" memory "* ]]; then
    for kind in tcp tls ws wss; do
        printf 'idle %-4s connection: %6s B (%s connections, median of %s)\n' "$kind" "${MEM[$kind]:--}" "$MEM_CONNS" "$MEM_ROUNDS"
    done
fi
