#!/usr/bin/env bash
# Instructions the proxy executes per REGISTER and per call, counted by
# valgrind's callgrind: repeatable on a shared, noisy machine, where CPU
# time is not (issue 18: "profile, then decide").
#
#   bash bench/callgrind.sh              # build (release), then both kinds
#   SKIP_BUILD=1 KINDS=register bash bench/callgrind.sh
#   KEEP=1 ...                           # keep the callgrind.out files (callgrind_annotate them)
#   POLICY=builtin:default ...           # with a tenant policy on every request (the switchyard-wasm target)
#   TARGET=kamailio ...                  # Kamailio with bench/kamailio.cfg instead (all its processes summed)
#
# Each kind runs the node under callgrind twice, with N1 and N2 operations
# (SIPp at a rate valgrind's one-core serialisation keeps up with), and
# reports (Ir(N2) - Ir(N1)) / (N2 - N1): start-up, the store's first
# allocations and shutdown cancel out. Calls go to one registered SIPp
# callee (INVITE -> 100/180 -> 200 -> ACK -> BYE -> 200, record-routed).
# Traffic stays on 127.0.71.x.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

IP=127.0.71.1
UAS_IP=127.0.71.2
UAC_IP=127.0.71.3
PORT=5090
UAS_PORT=5070
DOMAIN=bench.test
KINDS=${KINDS:-"register call"}
REG_N1=${REG_N1:-500} REG_N2=${REG_N2:-1500} REG_RATE=${REG_RATE:-100}
CALL_N1=${CALL_N1:-100} CALL_N2=${CALL_N2:-300} CALL_RATE=${CALL_RATE:-20}
BIN=${BIN:-target/release/switchyard}
SCEN=tests/sipp
PIDS=()
WORK=$(mktemp -d /tmp/switchyard-callgrind.XXXXXX)
cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    [[ -n ${KEEP:-} ]] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
[[ -n ${SKIP_BUILD:-} || ${TARGET:-} == kamailio ]] || cargo build --release -p switchyard -q
[[ ${TARGET:-} != kamailio ]] || command -v kamailio >/dev/null || { echo "kamailio not found: apt-get install kamailio" >&2; exit 1; }

# One node under callgrind; OPS operations of KIND; prints the node's Ir.
measure() {
    local kind=$1 ops=$2 out="$WORK/callgrind.$1.$2" node policy_args=()
    if [[ -n ${POLICY:-} ]]; then
        printf '[tenants]\ndefault = "bench"\n[tenants.policies.bench]\nmodule = "%s"\n' "$POLICY" >"$WORK/policy.toml"
        policy_args=(--config "$WORK/policy.toml")
    fi
    if [[ ${TARGET:-switchyard} == kamailio ]]; then
        # As bench/run.sh runs it (two UDP workers); callgrind follows the
        # forked workers and writes a file per process.
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out.%p.out" --dump-instr=no \
            kamailio -f bench/kamailio.cfg -DD -E -m 256 -M 16 -n 2 -A "LISTEN_IP=$IP" -A "LISTEN_PORT=$PORT" \
            >"$WORK/node.$kind.$ops.log" 2>&1 &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out.out" --dump-instr=no \
            "$BIN" run --no-auth "${policy_args[@]+"${policy_args[@]}"}" --listen "udp:$IP:$PORT" --domain "$DOMAIN" --log warn \
            >"$WORK/node.$kind.$ops.log" 2>&1 &
    fi
    node=$!
    PIDS+=("$node")
    wait_udp_bound "$IP" "$PORT" 6000 || { log "node did not start under valgrind"; tail -5 "$WORK/node.$kind.$ops.log" >&2; exit 1; }
    users_csv "$WORK/users.csv" 1 callee
    local common=(-bind_local -nostdin -timeout 600 -timeout_error -inf "$WORK/users.csv" -key domain "$DOMAIN")
    if [[ $kind == register ]]; then
        sipp "$IP:$PORT" -sf "$SCEN/uac_register.xml" -i "$UAC_IP" "${common[@]}" -m "$ops" -r "$REG_RATE" \
            -key uas "$UAS_IP:$UAS_PORT" -key expires 3600 >/dev/null 2>&1 || { log "register run failed"; exit 1; }
    else
        sipp -sf "$SCEN/uas_answer.xml" -i "$UAS_IP" -p "$UAS_PORT" -nostdin -bind_local >/dev/null 2>&1 &
        local uas=$!
        PIDS+=("$uas")
        wait_udp_bound "$UAS_IP" "$UAS_PORT"
        sipp "$IP:$PORT" -sf "$SCEN/uac_register.xml" -i "$UAC_IP" "${common[@]}" -m 1 -r 1 \
            -key uas "$UAS_IP:$UAS_PORT" -key expires 3600 >/dev/null 2>&1 || { log "bind failed"; exit 1; }
        sipp "$IP:$PORT" -sf "$SCEN/uac_call.xml" -i "$UAC_IP" "${common[@]}" -m "$ops" -r "$CALL_RATE" \
            -d 20 >/dev/null 2>&1 || { log "call run failed"; exit 1; }
        stop_pid "$uas"
    fi
    # SIGTERM: the node drains and exits, and callgrind writes its file;
    # under valgrind that can take longer than stop_pid's 5 s.
    kill -TERM "$node" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$node" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$node"
    # Kamailio's workers may outlive their parent by a moment.
    for _ in $(seq 300); do pgrep -f "callgrind-out-file=$out" >/dev/null || break; sleep 0.2; done
    awk '/^summary:/ { s += $2 } END { print s }' "$out".*out
}

declare -A PER
for kind in $KINDS; do
    if [[ $kind == register ]]; then n1=$REG_N1 n2=$REG_N2; else n1=$CALL_N1 n2=$CALL_N2; fi
    log "$kind: $n1 then $n2 under callgrind"
    ir1=$(measure "$kind" "$n1")
    ir2=$(measure "$kind" "$n2")
    PER[$kind]=$(awk -v a="$ir1" -v b="$ir2" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
    log "  Ir $ir1 ($n1) and $ir2 ($n2): ${PER[$kind]} instructions per $kind"
done
echo
for kind in $KINDS; do
    printf 'instructions per %-8s %12s\n' "$kind" "${PER[$kind]}"
done
