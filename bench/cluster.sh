#!/usr/bin/env bash
# Switchyard cluster on one machine: REGISTER/s and calls/s with 1 node vs
# 3 nodes, and the cost of the Path hop (registered on A, called at C vs
# registered and called on A).
#
#   bench/cluster.sh               # build the example (release), run all
#   SKIP_BUILD=1 bench/cluster.sh  # use target/release/examples/cluster
#   PHASES="calls" bench/cluster.sh  # some of: register calls
#
# The nodes run in one process (examples/cluster.rs) sharing one embedded
# store, the stand-in for Cassandra here; each has its own address and
# sockets, and nodes reach each other over TCP through Path and
# Record-Route entries, as separate machines would. The machine has 2
# cores for the proxy process, the SIPp UACs and the UAS together, so the
# figures are per machine, not per node: "per-core efficiency" is the
# 3-node figure over the 1-node one on the same cores.
#
# Rows:
#   REGISTER/s, 1 node        one UAC registering at A
#   REGISTER/s, 3 nodes       three UACs, one per node, a third of the rate each
#   calls/s, A -> A           users registered at A, called at A
#   calls/s, A -> C (Path)    users registered at A, called at C: C -> A -> UAS
#   calls/s, 3 nodes spread   three UACs, UAC at node i calls users registered
#                             at node i+1: every call crosses nodes
# Rates double until a step fails (> 0.1% failed or < 95% of the rate
# achieved), then bisect BISECT times; every step uses fresh processes.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN="$ROOT/tests/sipp"
DOMAIN=bench.test
PHASES=${PHASES:-"register calls"}
STEP_SECS=${STEP_SECS:-5}
BISECT=${BISECT:-3}
REG_START=${REG_START:-1000}
REG_MAX=${REG_MAX:-64000}
CALL_START=${CALL_START:-200}
CALL_MAX=${CALL_MAX:-16000}
USERS=${USERS:-3000}               # per node
CALL_HOLD_MS=${CALL_HOLD_MS:-20}
MAX_FAIL_PPM=1000
MIN_ACHIEVED_PCT=95

NODES=(127.0.0.50 127.0.0.51 127.0.0.52)   # A B C
PORT=5060
UAC_IPS=(127.0.0.60 127.0.0.61 127.0.0.62)
UAS_IP=127.0.0.65
UAS_PORT=5070
BIN="$ROOT/target/release/examples/cluster"

WORK=$(mktemp -d /tmp/switchyard-cluster.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "${KEEP:-}" ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SIPP_COMMON=(-nostdin -bind_local -buff_size 4194304 -recv_timeout 4000
    -max_recv_loops 10000 -max_sched_loops 10000 -trace_stat -fd 3600 -trace_err)

start_cluster() { # start_cluster N -> CLUSTER_PID
    local n=$1 args=() i
    for ((i = 0; i < n; i++)); do
        wait_port_free "${NODES[$i]}" "$PORT" || { log "${NODES[$i]}:$PORT is taken"; return 1; }
        args+=(--node "${NODES[$i]}")
    done
    "$BIN" "${args[@]}" --port "$PORT" --domain "$DOMAIN" >"$WORK/cluster.log" 2>&1 &
    CLUSTER_PID=$!
    PIDS+=("$CLUSTER_PID")
    for ((i = 0; i < n; i++)); do
        wait_udp_bound "${NODES[$i]}" "$PORT" || { log "node on ${NODES[$i]} did not bind"; tail -5 "$WORK/cluster.log" >&2; return 1; }
    done
}

start_uas() {
    sipp -sf "$SCEN/uas_answer.xml" -i "$UAS_IP" -p "$UAS_PORT" \
        -nostdin -bind_local -buff_size 4194304 -max_recv_loops 10000 -max_sched_loops 10000 \
        -trace_err -error_file "$WORK/uas.err" >/dev/null 2>"$WORK/uas.stderr" &
    UAS_PID=$!
    PIDS+=("$UAS_PID")
    wait_udp_bound "$UAS_IP" "$UAS_PORT" || { log "UAS did not start"; return 1; }
}

# uac NAME NODE UAC_INDEX SCENARIO RATE CALLS USERS_CSV [sipp args] &
# -> writes "successful failed" to $WORK/NAME.res
uac() {
    local name=$1 node=$2 ui=$3 scenario=$4 rate=$5 calls=$6 users=$7
    shift 7
    local stf="$WORK/$name.stat"
    rm -f "$stf"
    timeout $((calls / rate + 30)) sipp "$node:$PORT" -sf "$scenario" -i "${UAC_IPS[$ui]}" \
        -r "$rate" -m "$calls" -l $((rate * 5 + 100)) -inf "$users" -key domain "$DOMAIN" \
        -stf "$stf" -error_file "$WORK/$name.err" "${SIPP_COMMON[@]}" "$@" \
        >/dev/null 2>"$WORK/$name.stderr" || true
    if [[ -s $stf ]]; then
        echo "$(stat "$stf" 'SuccessfulCall(C)') $(stat "$stf" 'FailedCall(C)')" >"$WORK/$name.res"
    else
        echo "0 $calls" >"$WORK/$name.res"
    fi
}

register_users() { # register_users NODE_INDEX CSV (not timed)
    uac "bind-$1" "${NODES[$1]}" "$1" "$SCEN/uac_register.xml" 4000 "$USERS" "$2" \
        -key uas "$UAS_IP:$UAS_PORT" -key expires 3600 -p 5080
}

# run_parallel RATE -- "NAME NODE UAC SCENARIO USERS [args...]" ... ->
# sums into OK FAILED and the wall time into ELAPSED; each UAC gets RATE/k.
run_parallel() {
    local rate=$1 k=$(($# - 1)) t0 t1 spec name ok failed
    shift
    local specs=("$@")
    local share=$((rate / k)) calls=$(((rate / k) * STEP_SECS))
    t0=$(date +%s.%N)
    local bg=()
    for spec in "${specs[@]}"; do
        # shellcheck disable=SC2086
        set -- $spec
        name=$1
        uac "$name" "$2" "$3" "$4" "$share" "$calls" "$5" "${@:6}" &
        bg+=($!)
    done
    wait "${bg[@]}"
    t1=$(date +%s.%N)
    OK=0 FAILED=0
    for spec in "${specs[@]}"; do
        read -r ok failed <"$WORK/${spec%% *}.res"
        OK=$((OK + ok)) FAILED=$((FAILED + failed))
    done
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    TOTAL=$((calls * k))
}

step() { # step RATE: runs MODE, returns the verdict
    local rate=$1 nodes=3
    [[ $MODE == reg1 || $MODE == callAA ]] && nodes=1
    start_cluster "$nodes" || return 1
    case $MODE in
        reg1) SPECS=("r0-$rate ${NODES[0]} 0 $SCEN/uac_register.xml $WORK/u0.csv -key uas $UAS_IP:$UAS_PORT -key expires 3600 -p 5080") ;;
        reg3) SPECS=()
            for i in 0 1 2; do SPECS+=("r$i-$rate ${NODES[$i]} $i $SCEN/uac_register.xml $WORK/u$i.csv -key uas $UAS_IP:$UAS_PORT -key expires 3600 -p 508$i"); done ;;
        callAA | callAC | call3)
            start_uas || { stop_pid "$CLUSTER_PID"; return 1; }
            if [[ $MODE == call3 ]]; then
                for i in 0 1 2; do register_users "$i" "$WORK/u$i.csv"; done
                SPECS=()
                for i in 0 1 2; do SPECS+=("c$i-$rate ${NODES[$i]} $i $SCEN/uac_call.xml $WORK/u$(((i + 1) % 3)).csv -d $CALL_HOLD_MS -p 509$i"); done
            else
                register_users 0 "$WORK/u0.csv"
                local at=0
                [[ $MODE == callAC ]] && at=2
                SPECS=("c-$rate ${NODES[$at]} $at $SCEN/uac_call.xml $WORK/u0.csv -d $CALL_HOLD_MS -p 5090")
            fi ;;
    esac
    run_parallel "$rate" "${SPECS[@]}"
    [[ -n ${UAS_PID:-} ]] && { stop_pid "$UAS_PID"; UAS_PID=; }
    stop_pid "$CLUSTER_PID"
    if verdict "$rate" "$TOTAL" "$OK" "$FAILED" "$ELAPSED"; then
        log "  $MODE $rate/s: $OK ok, $FAILED failed in ${ELAPSED}s: pass"
        return 0
    fi
    log "  $MODE $rate/s: $OK ok, $FAILED failed in ${ELAPSED}s: FAIL"
    return 1
}

command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building examples/cluster (release)"
    (cd "$ROOT" && cargo build --release -p switchyard --example cluster >"$WORK/build.log" 2>&1) ||
        { log "build failed"; tail -20 "$WORK/build.log"; exit 1; }
fi
for i in 0 1 2; do users_csv "$WORK/u$i.csv" "$USERS" "n${i}u"; done

declare -A R
START=$SECONDS
modes=()
[[ " $PHASES " == *" register "* ]] && modes+=(reg1 reg3)
[[ " $PHASES " == *" calls "* ]] && modes+=(callAA callAC call3)
for MODE in "${modes[@]}"; do
    UAS_PID=
    log "== $MODE"
    if [[ $MODE == reg* ]]; then ramp "$REG_START" "$REG_MAX" step; else ramp "$CALL_START" "$CALL_MAX" step; fi
    R[$MODE]=$RAMP_RESULT
done

ratio() { [[ -n ${1:-} && -n ${2:-} && $2 != 0 ]] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || echo "-"; }
echo
echo "Switchyard cluster on one machine ($(nproc) cores; nodes, SIPp UACs and UAS share them; ${STEP_SECS}s steps, fail < 0.1%)"
printf '%-30s %10s %12s\n' "metric" "rate" "vs 1 node"
printf '%-30s %10s %12s\n' "REGISTER/s, 1 node" "${R[reg1]:-pending}" ""
printf '%-30s %10s %12s\n' "REGISTER/s, 3 nodes" "${R[reg3]:-pending}" "$(ratio "${R[reg3]:-}" "${R[reg1]:-}")"
printf '%-30s %10s %12s\n' "calls/s, A -> A" "${R[callAA]:-pending}" ""
printf '%-30s %10s %12s\n' "calls/s, A -> C (Path hop)" "${R[callAC]:-pending}" "$(ratio "${R[callAC]:-}" "${R[callAA]:-}")"
printf '%-30s %10s %12s\n' "calls/s, 3 nodes, all cross" "${R[call3]:-pending}" "$(ratio "${R[call3]:-}" "${R[callAA]:-}")"
echo "bench time: $((SECONDS - START))s"
