#!/usr/bin/env bash
# The cost of digest authentication: the same proxy with [auth] off and on,
# in one run, for Switchyard and Kamailio 5.6.
#
#   bench/auth.sh                           # ~6 minutes, 4 s steps
#   TARGETS=switchyard bench/auth.sh        # some of: switchyard kamailio
#   PHASES=register bench/auth.sh           # some of: register calls
#   QUIET_WAIT=1200 bench/auth.sh           # first wait up to 20 min for no rustc/cargo
#   KAM_MODES="off on" bench/auth.sh        # Kamailio without the htable variant
#   PROXY_CPUS=0 LOAD_CPUS=1 bench/auth.sh  # proxy on core 0, SIPp on core 1 (taskset)
#
# Uses the existing target/release/switchyard (BIN=... for another); builds
# nothing. Measures, per proxy, with authentication off and then on:
#   register  REGISTER/s: the highest SIPp rate (-r) at which < 0.1% of the
#             REGISTERs fail and SIPp achieves >= 95% of the rate; USERS
#             distinct users in turn. Off: REGISTER -> 200
#             (uac_register.xml). On: every REGISTER challenged once,
#             REGISTER -> 401 -> REGISTER with Authorization -> 200
#             (uac_register_auth.xml): a "REGISTER" is the whole exchange.
#   calls     calls/s, same criteria, through the proxy to a registered SIPp
#             UAS (uas_answer.xml). Off: INVITE -> 100/180/200 -> ACK -> BYE
#             -> 200 (uac_call.xml). On: INVITE -> 407 -> ACK -> INVITE with
#             Proxy-Authorization -> 100/180/200 -> ACK -> BYE -> 200
#             (uac_call_auth.xml), each call from another of the USERS
#             subscribers (From user = digest user), ACK and BYE through the
#             Record-Route of the 200. Every call goes to the one callee AOR
#             "callee": SIPp 3.6.1 cannot put a per-call Request-URI in the
#             digest uri (only -auth_uri, fixed), and Switchyard checks the
#             two match (RFC 7616 3.4.6). Off uses the same callee.
# Each ramp's first step (REG_START, CALL_START: far below overload) also
# gives the proxy's CPU time per REGISTER / call (utime + stime of the
# proxy and its child processes over the step, /proc/PID/stat): steadier
# than the rates on a shared machine.
# Switchyard: `switchyard run --no-auth` vs `[auth] enabled = true` with a
# subscriber file of USERS + 1 users (HA1s written here with python3), the
# default offered algorithm (MD5, qop=auth). Kamailio: bench/kamailio.cfg vs
# bench/kamailio-auth.cfg (auth_db over db_text with the same users and
# HA1s; qop=auth) and, as "on-htable", the same with -A WITH_HTABLE (the
# table loaded into an htable and checked with pv_auth_check): db_text
# scans its rows on every query, so its cost grows with USERS.
# With PROXY_CPUS / LOAD_CPUS the proxy (and its workers) and the SIPp
# processes are pinned apart, so a rate measures the proxy's capacity on
# its core rather than how the two cores were shared: an authenticated
# REGISTER costs SIPp two exchanges and a digest, and unpinned, SIPp's
# share of the cores moves the ratio as much as the proxy's cost does.
# Each step runs against a freshly started proxy (and UAS, and for calls a
# freshly registered callee). Rates double until a step fails, then bisect
# BISECT times. Everything is on 127.0.0.x (addresses apart from run.sh's
# and cluster.sh's); every process started here is stopped on exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN="$ROOT/tests/sipp"
BIN=${BIN:-"$ROOT/target/release/switchyard"}
DOMAIN=bench.test
TARGETS=${TARGETS:-"switchyard kamailio"}
PHASES=${PHASES:-"register calls"}
STEP_SECS=${STEP_SECS:-4}          # length of one rate step
BISECT=${BISECT:-2}                # bisection rounds after the doubling stops
REG_START=${REG_START:-2000}       # first REGISTER/s step
REG_MAX=${REG_MAX:-64000}
CALL_START=${CALL_START:-400}      # first calls/s step
CALL_MAX=${CALL_MAX:-16000}
USERS=${USERS:-10000}
KAM_SHM_MB=${KAM_SHM_MB:-1024}     # Kamailio shared memory (MiB), as bench/run.sh
CALL_HOLD_MS=${CALL_HOLD_MS:-20}   # between ACK and BYE (see run.sh)
QUIET_WAIT=${QUIET_WAIT:-0}        # seconds to wait for no rustc/cargo first
SY_MODES=${SY_MODES:-"off on"}
KAM_MODES=${KAM_MODES:-"off on on-htable"}
MAX_FAIL_PPM=1000                  # 0.1 %
MIN_ACHIEVED_PCT=95
TARGET_RATIO=0.60                  # the issue's target for Switchyard: on >= 0.6x off

SY_ADDR=127.0.0.11
KAM_ADDR=127.0.0.21
PORT=5060
UAC_IP=127.0.0.45
declare -A UAS_IP=([switchyard]=127.0.0.35 [kamailio]=127.0.0.36)
UAS_PORT=5070
CALLEE=callee

PROXY_PIN=()
[[ -n ${PROXY_CPUS:-} ]] && PROXY_PIN=(taskset -c "$PROXY_CPUS")
LOAD_PIN=()
[[ -n ${LOAD_CPUS:-} ]] && LOAD_PIN=(taskset -c "$LOAD_CPUS")

WORK=$(mktemp -d /tmp/switchyard-bench-auth.XXXXXX)
PIDS=()

cleanup() {
    local pid kids=()
    for pid in "${PIDS[@]}"; do
        kids+=($(pgrep -P "$pid" || true))
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}" "${kids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP:-}" ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- proxies ---------------------------------------------------------------

# start_proxy TARGET MODE(off|on) -> PROXY_PID, PROXY_ADDR
start_proxy() {
    local target=$1 mode=$2
    case $target in
        switchyard) PROXY_ADDR=$SY_ADDR ;;
        kamailio) PROXY_ADDR=$KAM_ADDR ;;
    esac
    if ! wait_port_free "$PROXY_ADDR" "$PORT"; then
        log "$PROXY_ADDR:$PORT is taken by another process:"
        ss -Hlunp "src $PROXY_ADDR:$PORT" >&2 || true
        return 1
    fi
    local log="$WORK/$target-$mode.log"
    case $target-$mode in
        switchyard-off)
            "${PROXY_PIN[@]}" "$BIN" run --no-auth --listen "udp:$SY_ADDR:$PORT" --listen "tcp:$SY_ADDR:$PORT" \
                --domain "$DOMAIN" --log warn >"$log" 2>&1 &
            ;;
        switchyard-on)
            "${PROXY_PIN[@]}" "$BIN" run --config "$WORK/auth.toml" --listen "udp:$SY_ADDR:$PORT" --listen "tcp:$SY_ADDR:$PORT" \
                --domain "$DOMAIN" --log warn >"$log" 2>&1 &
            ;;
        kamailio-off)
            "${PROXY_PIN[@]}" kamailio -f "$ROOT/bench/kamailio.cfg" -DD -E -m "$KAM_SHM_MB" -M 16 -n 2 \
                -A "LISTEN_IP=$KAM_ADDR" -A "LISTEN_PORT=$PORT" >"$log" 2>&1 &
            ;;
        kamailio-on | kamailio-on-htable)
            local htable=()
            [[ $mode == on-htable ]] && htable=(-A WITH_HTABLE)
            "${PROXY_PIN[@]}" kamailio -f "$ROOT/bench/kamailio-auth.cfg" -DD -E -m "$KAM_SHM_MB" -M 16 -n 2 \
                -A "LISTEN_IP=$KAM_ADDR" -A "LISTEN_PORT=$PORT" -A "AUTH_DOMAIN=$DOMAIN" \
                -A "DBURL=\"text://$WORK/kamdb\"" "${htable[@]}" >"$log" 2>&1 &
            ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_udp_bound "$PROXY_ADDR" "$PORT" || {
        log "$target ($mode) did not bind $PROXY_ADDR:$PORT"
        tail -5 "$log" >&2
        stop_proxy
        return 1
    }
}

# Stop the proxy and whatever children it leaves: Kamailio's main process
# stops its workers on SIGTERM, but when it is still busy after
# stop_pid's 5 s (an overloaded step's backlog) it gets SIGKILL and its
# workers, which ignore SIGTERM, live on holding the address.
stop_proxy() {
    local kids k
    kids=$(pgrep -P "$PROXY_PID" || true)
    stop_pid "$PROXY_PID"
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
}

start_uas() {
    "${LOAD_PIN[@]}" sipp -sf "$SCEN/uas_answer.xml" -i "${UAS_IP[$TARGET]}" -p "$UAS_PORT" \
        -nostdin -bind_local -buff_size 4194304 -max_recv_loops 10000 -max_sched_loops 10000 \
        -trace_err -error_file "$WORK/uas-$TARGET.err" >/dev/null 2>"$WORK/uas-$TARGET.stderr" &
    UAS_PID=$!
    PIDS+=("$UAS_PID")
    wait_udp_bound "${UAS_IP[$TARGET]}" "$UAS_PORT" || { log "UAS did not start"; return 1; }
}

# --- steps -----------------------------------------------------------------

# cpu_note KEY RATE START BEFORE OK: records µs per operation for the ramp's first step
cpu_note() {
    local key=$1 rate=$2 start=$3 before=$4 ok=$5 after
    ((rate == start && ok > 0)) || return 0
    after=$(cpu_ticks "$PROXY_PID")
    CPU_US[$key]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$ok" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }')
}

register_args() { # MODE -> scenario and its arguments for one REGISTER per call
    if [[ $1 == on* ]]; then
        REG_ARGS=("$SCEN/uac_register_auth.xml" -auth_uri "$DOMAIN")
    else
        REG_ARGS=("$SCEN/uac_register.xml")
    fi
}

register_step() {
    local rate=$1 calls res ok failed elapsed
    calls=$((rate * STEP_SECS))
    note_busy
    start_proxy "$TARGET" "$MODE" || return 1
    register_args "$MODE"
    local cpu0
    cpu0=$(cpu_ticks "$PROXY_PID")
    res=$(run_uac "reg-$TARGET-$MODE-$rate" "$PROXY_ADDR" "${REG_ARGS[0]}" "$rate" "$calls" \
        "${REG_ARGS[@]:1}" -inf "$WORK/users.csv" -key domain "$DOMAIN" \
        -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080)
    read -r ok failed elapsed drops <<<"$res"
    cpu_note "reg-$TARGET-$MODE" "$rate" "$REG_START" "$cpu0" "$ok"
    stop_proxy
    if verdict "$rate" "$calls" "$ok" "$failed" "$elapsed"; then
        log "  REGISTER $rate/s: $ok ok, $failed failed in ${elapsed}s: pass"
        DETAIL[reg-$TARGET-$MODE]="$rate/s: $ok ok / $failed failed in ${elapsed}s"
        return 0
    fi
    log "  REGISTER $rate/s: $ok ok, $failed failed in ${elapsed}s: FAIL"
    return 1
}

call_step() {
    local rate=$1 calls res ok failed elapsed
    calls=$((rate * STEP_SECS))
    note_busy
    start_proxy "$TARGET" "$MODE" || return 1
    start_uas || { stop_proxy; return 1; }
    # Bind the callee to the UAS (authenticated when auth is on; not timed).
    register_args "$MODE"
    res=$(run_uac "bind-$TARGET-$MODE-$rate" "$PROXY_ADDR" "${REG_ARGS[0]}" 10 1 \
        "${REG_ARGS[@]:1}" -inf "$WORK/callee.csv" -key domain "$DOMAIN" \
        -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080)
    read -r ok _ <<<"$res"
    if [[ $ok != 1 ]]; then
        log "  could not register the callee ($TARGET, auth $MODE): step void"
        stop_pid "$UAS_PID"
        stop_proxy
        return 1
    fi
    local scen=("$SCEN/uac_call.xml")
    [[ $MODE == on* ]] && scen=("$SCEN/uac_call_auth.xml" -auth_uri "$CALLEE@$DOMAIN")
    local cpu0
    cpu0=$(cpu_ticks "$PROXY_PID")
    res=$(run_uac "call-$TARGET-$MODE-$rate" "$PROXY_ADDR" "${scen[0]}" "$rate" "$calls" \
        "${scen[@]:1}" -inf "$WORK/calls.csv" -key domain "$DOMAIN" -d "$CALL_HOLD_MS" -p 5081)
    read -r ok failed elapsed drops <<<"$res"
    cpu_note "call-$TARGET-$MODE" "$rate" "$CALL_START" "$cpu0" "$ok"
    stop_pid "$UAS_PID"
    stop_proxy
    if verdict "$rate" "$calls" "$ok" "$failed" "$elapsed"; then
        log "  calls $rate/s: $ok ok, $failed failed in ${elapsed}s: pass"
        DETAIL[call-$TARGET-$MODE]="$rate/s: $ok ok / $failed failed in ${elapsed}s"
        return 0
    fi
    log "  calls $rate/s: $ok ok, $failed failed in ${elapsed}s: FAIL"
    return 1
}

# A proxy that cannot even complete one authenticated REGISTER at 10/s is
# misconfigured, not slow: say so instead of reporting 0.
smoke() { # TARGET MODE
    local res ok
    start_proxy "$1" "$2" || return 1
    register_args "$2"
    res=$(run_uac "smoke-$1-$2" "$PROXY_ADDR" "${REG_ARGS[0]}" 10 1 \
        "${REG_ARGS[@]:1}" -inf "$WORK/callee.csv" -key domain "$DOMAIN" \
        -key uas "${UAS_IP[$1]}:$UAS_PORT" -key expires 3600 -p 5080)
    stop_proxy
    read -r ok _ <<<"$res"
    [[ $ok == 1 ]] || { log "$1 (auth $2): a single REGISTER failed (KEEP=1 keeps $WORK/smoke-$1-$2.err)"; return 1; }
}

bench_target() {
    TARGET=$1
    log "== $TARGET"
    if [[ $TARGET == switchyard && ! -x $BIN ]]; then log "no $BIN: skipped"; return; fi
    if [[ $TARGET == kamailio ]] && ! command -v kamailio >/dev/null; then
        log "kamailio not installed (apt-get install kamailio): skipped"
        return
    fi
    local modes=$SY_MODES
    [[ $TARGET == kamailio ]] && modes=$KAM_MODES
    for MODE in $modes; do
        smoke "$TARGET" "$MODE" || continue
        if [[ " $PHASES " == *" register "* ]]; then
            log "$TARGET, auth $MODE: REGISTER ramp from $REG_START/s, ${STEP_SECS}s steps, $USERS users"
            ramp "$REG_START" "$REG_MAX" register_step
            REG[$TARGET-$MODE]=$RAMP_RESULT
        fi
        if [[ " $PHASES " == *" calls "* ]]; then
            log "$TARGET, auth $MODE: call ramp from $CALL_START/s"
            ramp "$CALL_START" "$CALL_MAX" call_step
            CALLS[$TARGET-$MODE]=$RAMP_RESULT
        fi
    done
}

# Wait (up to QUIET_WAIT s) while compilers run: only 2 cores, shared.
busy() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }
STEPS=0
BUSY_STEPS=0
note_busy() { # count the steps that start while a compiler runs
    STEPS=$((STEPS + 1))
    if busy; then BUSY_STEPS=$((BUSY_STEPS + 1)); fi
}
wait_quiet() {
    local waited=0
    while busy && ((waited < QUIET_WAIT)); do
        ((waited == 0)) && log "rustc/cargo running: waiting up to ${QUIET_WAIT}s for a quiet machine"
        sleep 30
        waited=$((waited + 30))
    done
    if busy; then log "WARNING: rustc/cargo running: figures will be noisy"; fi
}

# --- main ------------------------------------------------------------------

command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
declare -A REG CALLS DETAIL CPU_US
write_users
wait_quiet
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$SECONDS
for t in $TARGETS; do bench_target "$t"; done

# --- report ----------------------------------------------------------------

ratio() { # A B -> A/B, or "-"
    [[ -n $1 && -n $2 && $2 != 0 ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
}
meets() { # A B -> "yes"/"NO"/"-" for A/B >= TARGET_RATIO
    [[ -n $1 && -n $2 && $2 != 0 ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" -v t="$TARGET_RATIO" 'BEGIN { print (a / b >= t ? "yes" : "NO") }'
}

echo
echo "Authentication cost ($(nproc) cores, SIPp $(sipp -v 2>/dev/null | awk '/SIPp v/ { sub(/\.$/, "", $2); print $2; exit }'), ${STEP_SECS}s steps, $BISECT bisections, fail < 0.1%, $USERS users, load before $LOAD_BEFORE)"
for t in $TARGETS; do
    modes=$SY_MODES
    case $t in
        switchyard) echo "Switchyard: --no-auth (off) vs [auth] (on: MD5, qop=auth)" ;;
        kamailio)
            modes=$KAM_MODES
            echo "Kamailio $(kamailio -v 2>/dev/null | awk '/^version:/ { print $3; exit }'): kamailio.cfg (off) vs kamailio-auth.cfg (on: auth_db on db_text; on-htable: -A WITH_HTABLE)"
            ;;
    esac
    declare -A CPU_REG=() CPU_CALL=()
    for m in $modes; do
        CPU_REG[$t-$m]=${CPU_US[reg-$t-$m]:-}
        CPU_CALL[$t-$m]=${CPU_US[call-$t-$m]:-}
    done
    for row in REGISTER/s calls/s "CPU us/REG" "CPU us/call"; do
        case $row in
            REGISTER/s) declare -n R=REG ;;
            calls/s) declare -n R=CALLS ;;
            "CPU us/REG") declare -n R=CPU_REG ;;
            "CPU us/call") declare -n R=CPU_CALL ;;
        esac
        if [[ $row == REGISTER/s ]]; then
            line=$(printf '  %-12s' "")
            for m in $modes; do
                line+=$(printf ' %10s' "$m")
                [[ $m == off ]] || line+=$(printf ' %7s' "/off")
            done
            echo "$line"
        fi
        line=$(printf '  %-12s' "$row")
        for m in $modes; do
            line+=$(printf ' %10s' "${R[$t-$m]:-pending}")
            [[ $m == off ]] || line+=$(printf ' %7s' "$(ratio "${R[$t-$m]:-}" "${R[$t-off]:-}")")
        done
        echo "$line"
        unset -n R
    done
    echo "  (CPU us: the proxy's CPU time per REGISTER / call at $REG_START REGISTER/s and $CALL_START calls/s)"
    if [[ $t == switchyard ]]; then
        echo "  target auth on >= ${TARGET_RATIO}x off: REGISTER $(meets "${REG[$t-on]:-}" "${REG[$t-off]:-}"), calls $(meets "${CALLS[$t-on]:-}" "${CALLS[$t-off]:-}")"
    fi
    for m in $modes; do
        for k in reg-$t-$m call-$t-$m; do
            [[ -n ${DETAIL[$k]:-} ]] && echo "  best step $k: ${DETAIL[$k]}"
        done
    done
done
echo "steps started while rustc/cargo ran: $BUSY_STEPS of $STEPS"
echo "bench time: $((SECONDS - START))s"
