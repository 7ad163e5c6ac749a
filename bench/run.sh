#!/usr/bin/env bash
# Switchyard vs Kamailio 5.6: the same SIPp scenarios against both proxies.
#
#   bench/run.sh                   # build switchyard (release), run everything
#   SKIP_BUILD=1 bench/run.sh      # use the existing target/release/switchyard
#   TARGETS=kamailio bench/run.sh  # some of: switchyard switchyard-pbx kamailio
#                                  # switchyard-cdr switchyard-nodialogs switchyard-wasm
#   PHASES=memory bench/run.sh     # some of: register calls memory cpu
#   SY_LOG=info bench/run.sh       # switchyard's log level (default warn)
#   BASELINE=/path/to/old/switchyard TARGETS="baseline switchyard" bench/run.sh
#                                  # before/after: targets baseline,
#                                  # baseline-pbx and baseline-wasm run that
#                                  # binary instead
#
# Measures, per proxy:
#   register  the highest REGISTER rate (SIPp -r) at which < 0.1% of the
#             REGISTERs fail and SIPp achieves >= 95% of the rate; users are
#             drawn in turn from 10k distinct AORs (each step registers
#             STEP_SECS seconds' worth).
#   switchyard-wasm runs the bundled `default` WebAssembly policy for the
#   bench tenant (every initial request and REGISTER through the sandbox,
#   issue 18's comparison).
#   switchyard-cdr is switchyard writing a CDR file (dialog tracking is on
#   in every switchyard target); switchyard-nodialogs has [dialogs]
#   enabled = false: together, the cost of the dialog layer and its CDRs.
#   switchyard-pbx is switchyard with the bundled hosted-pbx WebAssembly
#   policy serving the bench domain: every REGISTER goes through its
#   on-register and every INVITE through its on-request (dial plan of
#   USERS extensions, each ringing its registered contact).
#   calls     the same for calls INVITE -> 100/180 -> 200 -> ACK -> BYE -> 200
#             through the proxy to a registered SIPp UAS (record-routed).
#   memory    RSS (switchyard: VmRSS; kamailio: PSS summed over its
#             processes, its location table lives in shared memory) of a
#             fresh proxy before and after 100k distinct bindings, sent over
#             TCP: Timer J is 0 there, so no REGISTER transaction outlives
#             its response and the figure is the bindings' (over UDP, 32 s
#             of transactions at 4000/s would be most of it, and Kamailio's
#             5 s wait timer would not pay the same price).
#   cpu       proxy CPU per REGISTER and per call (µs, utime + stime from
#             /proc) at a fixed rate every proxy sustains (CPU_REG_RATE,
#             CPU_CALL_RATE for CPU_SECS), CPU_ROUNDS times, targets
#             alternating, median reported: on a shared 2-core machine the
#             steadiest figure, since it does not depend on SIPp keeping up.
# Rates go up by doubling until a step fails, then bisect BISECT times.
# Everything is on 127.0.0.x; every process started here is stopped on exit.
# Only 2 cores on the reference machine: SIPp UAC, SIPp UAS and the proxy
# share them, so absolute figures are low; the ratio is what matters.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN="$ROOT/tests/sipp"
DOMAIN=bench.test
TARGETS=${TARGETS:-"switchyard switchyard-pbx kamailio"}
PHASES=${PHASES:-"register calls memory"}
STEP_SECS=${STEP_SECS:-5}          # length of one rate step
BISECT=${BISECT:-3}                # bisection rounds after the doubling stops
REG_START=${REG_START:-1000}       # first REGISTER/s step
REG_MAX=${REG_MAX:-64000}
CALL_START=${CALL_START:-200}      # first calls/s step
CALL_MAX=${CALL_MAX:-16000}
USERS=${USERS:-10000}
# Between ACK and BYE. Not 0: a multi-worker proxy may relay an ACK and a
# BYE sent back to back in the wrong order, and the UAS (strict: it checks
# the ACK arrives) would count that as a failed call.
CALL_HOLD_MS=${CALL_HOLD_MS:-20}
MEM_USERS=${MEM_USERS:-100000}
MEM_RATE=${MEM_RATE:-4000}         # REGISTER/s while filling the table
MEM_TRANSPORT=${MEM_TRANSPORT:-tcp} # tcp, or udp (then also MEM_SETTLE=34 for Timer J)
MEM_SETTLE=${MEM_SETTLE:-5}        # seconds between the last REGISTER and the reading
CPU_REG_RATE=${CPU_REG_RATE:-8000}  # REGISTER/s of the cpu phase
CPU_CALL_RATE=${CPU_CALL_RATE:-3000} # calls/s of the cpu phase
CPU_SECS=${CPU_SECS:-10}
CPU_ROUNDS=${CPU_ROUNDS:-3}
SY_LOG=${SY_LOG:-warn}             # switchyard's --log (info: the per-message span is on)
MAX_FAIL_PPM=1000                  # 0.1 %
MIN_ACHIEVED_PCT=95

SY_ADDR=127.0.0.10   # switchyard
KAM_ADDR=127.0.0.20  # kamailio
PORT=5060
UAC_IP=127.0.0.40
# One UAS per proxy so that a straggler from one run never meets the other.
declare -A UAS_IP=([switchyard]=127.0.0.30 [kamailio]=127.0.0.31 [switchyard-pbx]=127.0.0.32 [baseline]=127.0.0.33 [baseline-pbx]=127.0.0.34 [switchyard-cdr]=127.0.0.35 [switchyard-nodialogs]=127.0.0.36 [switchyard-wasm]=127.0.0.37 [baseline-wasm]=127.0.0.38)
UAS_PORT=5070
# Kamailio's shared memory (-m, MiB): transactions and the location table.
# 256 MiB runs out in the call ramp (every step above ~1600 calls/s then
# completes the same ~8400 calls and fails the rest); its operators size
# it for the load.
KAM_SHM_MB=${KAM_SHM_MB:-1024}
# PROXY_CPUS=0 LOAD_CPUS=1: the proxy (and Kamailio's workers) on core 0,
# every SIPp on core 1 (taskset), so a rate is the proxy's own capacity on
# one core rather than a share of two it fights SIPp for.
PROXY_PIN=()
[[ -n ${PROXY_CPUS:-} ]] && PROXY_PIN=(taskset -c "$PROXY_CPUS")
LOAD_PIN=()
[[ -n ${LOAD_CPUS:-} ]] && LOAD_PIN=(taskset -c "$LOAD_CPUS")

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Give each a moment, then insist.
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP:-}" ]]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- proxies --------------------------------------------------------------

# The hosted-pbx tenant for the bench domain: USERS extensions, each the
# AOR user it registers as (user0 -> user0), the policy's defaults otherwise.
pbx_config() {
    {
        echo "[admin]"
        echo 'listen = "127.0.0.10:9060"'
        echo "[tenants]"
        echo 'default = "bench"'
        echo "[tenants.policies.bench]"
        echo 'module = "builtin:hosted-pbx"'
        echo "[tenants.policies.bench.config.extensions]"
        awk -v n="$USERS" 'BEGIN { for (i = 0; i < n; i++) printf "\"user%d\" = \"user%d\"\n", i, i }'
    } >"$1"
}

start_switchyard() { # start_switchyard BINARY [extra args]
    local bin=$1
    shift
    [[ -x $bin ]] || return 1
    "${PROXY_PIN[@]+"${PROXY_PIN[@]}"}" "$bin" run --no-auth "$@" --listen "udp:$SY_ADDR:$PORT" --listen "tcp:$SY_ADDR:$PORT" --domain "$DOMAIN" --log "$SY_LOG" \
        >"$WORK/switchyard.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_udp_bound "$SY_ADDR" "$PORT" || { log "switchyard did not bind $SY_ADDR:$PORT"; tail -5 "$WORK/switchyard.log" >&2; stop_pid "$PROXY_PID"; return 1; }
}

# -n 2: two UDP worker processes for the one listening socket, i.e. one per
# core. Kamailio's UDP workers each block in recvfrom() and run the whole
# script; more workers than cores only adds context switches and contention
# on the shared tm/usrloc locks, and here the cores are also shared with the
# two SIPp processes. -m KAM_SHM_MB: shared memory (transactions + 100k
# bindings), -M 16: per-process private memory.
start_kamailio() {
    "${PROXY_PIN[@]+"${PROXY_PIN[@]}"}" kamailio -f "$ROOT/bench/kamailio.cfg" -DD -E -m "$KAM_SHM_MB" -M 16 -n 2 \
        -A "LISTEN_IP=$KAM_ADDR" -A "LISTEN_PORT=$PORT" >"$WORK/kamailio.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_udp_bound "$KAM_ADDR" "$PORT" || { log "kamailio did not bind $KAM_ADDR:$PORT"; tail -5 "$WORK/kamailio.log" >&2; stop_pid "$PROXY_PID"; return 1; }
}

# The switchyard-wasm targets' config: the bundled `default` policy for the
# bench tenant.
wasm_config() {
    printf '[tenants]\ndefault = "bench"\n[tenants.policies.bench]\nmodule = "builtin:default"\n' >"$WORK/wasm.toml"
}

start_proxy() { # start_proxy TARGET -> sets PROXY_PID, PROXY_ADDR
    case $1 in
        switchyard | switchyard-* | baseline | baseline-*) PROXY_ADDR=$SY_ADDR ;;
        kamailio) PROXY_ADDR=$KAM_ADDR ;;
    esac
    # Never measure a stale instance that still holds the address.
    if ! wait_port_free "$PROXY_ADDR" "$PORT"; then
        log "$PROXY_ADDR:$PORT is taken by another process:"
        ss -Hlunp "src $PROXY_ADDR:$PORT" >&2 || true
        return 1
    fi
    case $1 in
        switchyard) start_switchyard "$ROOT/target/release/switchyard" ;;
        switchyard-pbx) start_switchyard "$ROOT/target/release/switchyard" --config "$WORK/pbx.toml" ;;
        switchyard-cdr)
            rm -f "$WORK"/cdr.jsonl*
            printf '[dialogs.cdr]\nfile = "%s"\n' "$WORK/cdr.jsonl" >"$WORK/cdr.toml"
            start_switchyard "$ROOT/target/release/switchyard" --config "$WORK/cdr.toml" ;;
        switchyard-nodialogs)
            printf '[dialogs]\nenabled = false\n' >"$WORK/nodialogs.toml"
            start_switchyard "$ROOT/target/release/switchyard" --config "$WORK/nodialogs.toml" ;;
        switchyard-wasm)
            wasm_config
            start_switchyard "$ROOT/target/release/switchyard" --config "$WORK/wasm.toml" ;;
        baseline) start_switchyard "${BASELINE:-}" ;;
        baseline-pbx) start_switchyard "${BASELINE:-}" --config "$WORK/pbx.toml" ;;
        baseline-wasm)
            wasm_config
            start_switchyard "${BASELINE:-}" --config "$WORK/wasm.toml" ;;
        kamailio) start_kamailio ;;
    esac
}

# Memory of the proxy in bytes: switchyard's VmRSS; for kamailio the PSS of
# the main process and all its children (shared memory counted once).
proxy_mem() {
    local target=$1 pid=$2
    if [[ $target == switchyard* || $target == baseline* ]]; then
        awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid/status"
    else
        local p total=0 pss
        for p in $pid $(pgrep -P "$pid"); do
            pss=$(awk '/^Pss:/ { print $2 * 1024 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
            total=$((total + ${pss:-0}))
        done
        echo "$total"
    fi
}

# --- benchmarks -----------------------------------------------------------

# Each step runs against a freshly started proxy (and UAS), so that the
# backlog of an overloaded step (retransmissions, open transactions) cannot
# fail the next, lower one.
register_step() {
    # (Two statements: in one `local`, $((rate * ...)) would be expanded
    # before rate is assigned, and see the caller's rate.)
    local rate=$1 calls res ok failed elapsed drops
    calls=$((rate * STEP_SECS))
    start_proxy "$TARGET" || return 1
    res=$(run_uac "reg-$TARGET-$rate" "$PROXY_ADDR" "$SCEN/uac_register.xml" "$rate" "$calls" \
        -inf "$WORK/users.csv" -key domain "$DOMAIN" -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080)
    stop_pid "$PROXY_PID"
    read -r ok failed elapsed drops <<<"$res"
    if verdict "$rate" "$calls" "$ok" "$failed" "$elapsed"; then
        log "  REGISTER $rate/s: $ok ok, $failed failed in ${elapsed}s, $drops UDP rcvbuf drops: pass"
        REG_DETAIL[$TARGET]="$ok ok / $failed failed in ${elapsed}s, $drops rcvbuf drops"
        return 0
    fi
    log "  REGISTER $rate/s: $ok ok, $failed failed in ${elapsed}s, $drops UDP rcvbuf drops: FAIL"
    return 1
}

call_step() {
    local rate=$1 calls res ok failed elapsed drops
    calls=$((rate * STEP_SECS))
    start_proxy "$TARGET" || return 1
    start_uas || { stop_pid "$PROXY_PID"; return 1; }
    # Bind every user to the UAS (not timed).
    run_uac "bind-$TARGET-$rate" "$PROXY_ADDR" "$SCEN/uac_register.xml" 4000 "$USERS" \
        -inf "$WORK/users.csv" -key domain "$DOMAIN" -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080 >/dev/null
    res=$(run_uac "call-$TARGET-$rate" "$PROXY_ADDR" "$SCEN/uac_call.xml" "$rate" "$calls" \
        -inf "$WORK/users.csv" -key domain "$DOMAIN" -d "$CALL_HOLD_MS" -p 5081)
    stop_pid "$UAS_PID"
    stop_pid "$PROXY_PID"
    read -r ok failed elapsed drops <<<"$res"
    if verdict "$rate" "$calls" "$ok" "$failed" "$elapsed"; then
        log "  calls $rate/s: $ok ok, $failed failed in ${elapsed}s, $drops UDP rcvbuf drops: pass"
        CALL_DETAIL[$TARGET]="$ok ok / $failed failed in ${elapsed}s, $drops rcvbuf drops"
        return 0
    fi
    log "  calls $rate/s: $ok ok, $failed failed in ${elapsed}s, $drops UDP rcvbuf drops: FAIL"
    return 1
}

# cpu_step KIND: µs of proxy CPU per operation at the phase's fixed rate,
# appended to CPU_RUNS[TARGET:KIND] (space-separated, one per round).
cpu_step() {
    local kind=$1 rate secs ops res ok failed elapsed cpu0 cpu1
    secs=$CPU_SECS
    start_proxy "$TARGET" || return 1
    if [[ $kind == register ]]; then
        rate=$CPU_REG_RATE
        ops=$((rate * secs))
        cpu0=$(cpu_ticks "$PROXY_PID")
        res=$(run_uac "cpu-reg-$TARGET" "$PROXY_ADDR" "$SCEN/uac_register.xml" "$rate" "$ops" \
            -inf "$WORK/users.csv" -key domain "$DOMAIN" -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080)
    else
        rate=$CPU_CALL_RATE
        ops=$((rate * secs))
        start_uas || { stop_pid "$PROXY_PID"; return 1; }
        run_uac "cpu-bind-$TARGET" "$PROXY_ADDR" "$SCEN/uac_register.xml" 4000 "$USERS" \
            -inf "$WORK/users.csv" -key domain "$DOMAIN" -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5080 >/dev/null
        cpu0=$(cpu_ticks "$PROXY_PID")
        res=$(run_uac "cpu-call-$TARGET" "$PROXY_ADDR" "$SCEN/uac_call.xml" "$rate" "$ops" \
            -inf "$WORK/users.csv" -key domain "$DOMAIN" -d "$CALL_HOLD_MS" -p 5081)
        stop_pid "$UAS_PID"
    fi
    cpu1=$(cpu_ticks "$PROXY_PID")
    stop_pid "$PROXY_PID"
    read -r ok failed elapsed drops <<<"$res"
    local us
    us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$ok" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n }')
    log "  cpu $kind at $rate/s: $ok ok, $failed failed in ${elapsed}s: ${us:-?} µs per $kind"
    ((failed == 0)) && [[ -n $us ]] && CPU_RUNS[$TARGET:$kind]+="$us "
    return 0
}



bench_target() {
    TARGET=$1
    log "== $TARGET"
    if ! start_proxy "$TARGET"; then
        log "$TARGET unavailable: skipped"
        return
    fi
    stop_pid "$PROXY_PID"
    if [[ " $PHASES " == *" register "* ]]; then
        log "REGISTER ramp from $REG_START/s, ${STEP_SECS}s steps, $USERS users"
        ramp "$REG_START" "$REG_MAX" register_step
        REG[$TARGET]=$RAMP_RESULT
    fi
    if [[ " $PHASES " == *" calls "* ]]; then
        log "call ramp from $CALL_START/s"
        ramp "$CALL_START" "$CALL_MAX" call_step
        CALLS[$TARGET]=$RAMP_RESULT
    fi
    # Bindings cost the same with or without a policy (and the memory
    # run's users are not in the PBX's dial plan).
    [[ " $PHASES " == *" memory "* && $TARGET != *-pbx ]] || return 0

    log "memory: $MEM_USERS bindings at $MEM_RATE/s over $MEM_TRANSPORT into a fresh $TARGET"
    start_proxy "$TARGET" || return 0
    local tflag=u1
    if [[ $MEM_TRANSPORT == tcp ]]; then
        tflag=t1
        wait_tcp_bound "$PROXY_ADDR" "$PORT" || { log "no TCP listener"; stop_pid "$PROXY_PID"; return 0; }
    fi
    sleep 1 # let it finish allocating its start-up state before the baseline
    local before after res ok failed
    before=$(proxy_mem "$TARGET" "$PROXY_PID")
    res=$(run_uac "mem-$TARGET" "$PROXY_ADDR" "$SCEN/uac_register.xml" "$MEM_RATE" "$MEM_USERS" \
        -inf "$WORK/users-mem.csv" -key domain "$DOMAIN" -key uas "${UAS_IP[$TARGET]}:$UAS_PORT" -key expires 3600 -p 5082 -t "$tflag")
    read -r ok failed _ _ <<<"$res"
    log "  $ok registered, $failed failed; settling ${MEM_SETTLE}s"
    sleep "$MEM_SETTLE"
    after=$(proxy_mem "$TARGET" "$PROXY_PID")
    MEM_BEFORE[$TARGET]=$before
    MEM_AFTER[$TARGET]=$after
    MEM_OK[$TARGET]=$ok
    stop_pid "$PROXY_PID"
}

# --- main -----------------------------------------------------------------

command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
declare -A REG CALLS REG_DETAIL CALL_DETAIL MEM_BEFORE MEM_AFTER MEM_OK CPU_RUNS

if [[ " $TARGETS " == *" switchyard"* && -z "${SKIP_BUILD:-}" ]]; then
    log "building switchyard (release)"
    (cd "$ROOT" && cargo build --release -p switchyard >"$WORK/build.log" 2>&1) ||
        log "switchyard build failed (see $WORK/build.log with KEEP=1): its rows will be pending"
fi
users_csv "$WORK/users.csv" "$USERS"
pbx_config "$WORK/pbx.toml"
users_csv "$WORK/users-mem.csv" "$MEM_USERS" mem

START=$SECONDS
for t in $TARGETS; do bench_target "$t"; done
if [[ " $PHASES " == *" cpu "* ]]; then
    for ((round = 1; round <= CPU_ROUNDS; round++)); do
        for TARGET in $TARGETS; do
            log "== cpu round $round: $TARGET"
            cpu_step register || log "$TARGET unavailable"
            cpu_step call || true
        done
    done
fi

# --- report ---------------------------------------------------------------

fmt_bytes() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.1f MiB", b / 1048576; else printf "%.0f B", b }'; }
per_binding() { # TARGET -> bytes per binding, or empty
    local t=$1
    [[ -n ${MEM_AFTER[$t]:-} && ${MEM_OK[$t]:-0} -gt 0 ]] || return 0
    awk -v a="${MEM_AFTER[$t]}" -v b="${MEM_BEFORE[$t]}" -v n="${MEM_OK[$t]}" 'BEGIN { printf "%.0f", (a - b) / n }'
}
ratio() { # A B -> A/B, or "-"
    [[ -n $1 && -n $2 && $2 != 0 ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
}

sy_pb=$(per_binding switchyard)
kam_pb=$(per_binding kamailio)
echo
echo "Switchyard vs Kamailio 5.6 ($(nproc) cores, SIPp $(sipp -v 2>/dev/null | awk '/SIPp v/ { print $2; exit }'), ${STEP_SECS}s steps, fail < 0.1%)"
printf '%-34s %14s %14s %9s\n' "metric" "switchyard" "kamailio" "ratio"
printf '%-34s %14s %14s %9s\n' "REGISTER/s ($USERS users)" "${REG[switchyard]:-pending}" "${REG[kamailio]:-pending}" "$(ratio "${REG[switchyard]:-}" "${REG[kamailio]:-}")"
printf '%-34s %14s %14s %9s\n' "calls/s (INVITE..BYE via proxy)" "${CALLS[switchyard]:-pending}" "${CALLS[kamailio]:-pending}" "$(ratio "${CALLS[switchyard]:-}" "${CALLS[kamailio]:-}")"
printf '%-34s %14s %14s %9s\n' "REGISTER/s, hosted-pbx policy" "${REG[switchyard-pbx]:-pending}" "${REG[kamailio]:-pending}" "$(ratio "${REG[switchyard-pbx]:-}" "${REG[kamailio]:-}")"
printf '%-34s %14s %14s %9s\n' "calls/s, hosted-pbx policy" "${CALLS[switchyard-pbx]:-pending}" "${CALLS[kamailio]:-pending}" "$(ratio "${CALLS[switchyard-pbx]:-}" "${CALLS[kamailio]:-}")"
printf '%-34s %14s %14s %9s\n' "memory before ($MEM_USERS, $MEM_TRANSPORT)" \
    "$([[ -n ${MEM_BEFORE[switchyard]:-} ]] && fmt_bytes "${MEM_BEFORE[switchyard]}" || echo pending)" \
    "$([[ -n ${MEM_BEFORE[kamailio]:-} ]] && fmt_bytes "${MEM_BEFORE[kamailio]}" || echo pending)" ""
printf '%-34s %14s %14s %9s\n' "memory after" \
    "$([[ -n ${MEM_AFTER[switchyard]:-} ]] && fmt_bytes "${MEM_AFTER[switchyard]}" || echo pending)" \
    "$([[ -n ${MEM_AFTER[kamailio]:-} ]] && fmt_bytes "${MEM_AFTER[kamailio]}" || echo pending)" ""
printf '%-34s %14s %14s %9s\n' "bytes per binding" "${sy_pb:-pending}" "${kam_pb:-pending}" "$(ratio "$sy_pb" "$kam_pb")"
echo "(memory: switchyard VmRSS; kamailio PSS summed over its processes. Ratio > 1 is better for rates, worse for memory.)"
if [[ " $TARGETS " == *" switchyard-wasm "* ]]; then
    echo "default WASM policy vs Kamailio: REGISTER/s $(ratio "${REG[switchyard-wasm]:-}" "${REG[kamailio]:-}"), calls/s $(ratio "${CALLS[switchyard-wasm]:-}" "${CALLS[kamailio]:-}") (issue 18 target >= 1.5x)"
fi
if [[ " $TARGETS " == *" switchyard-cdr "* && " $TARGETS " == *" switchyard-nodialogs "* ]]; then
    echo "dialogs + CDR file vs dialogs off: calls/s $(ratio "${CALLS[switchyard-cdr]:-}" "${CALLS[switchyard-nodialogs]:-}") (target >= 0.90x)"
fi
echo "hosted-pbx vs no policy: REGISTER/s $(ratio "${REG[switchyard-pbx]:-}" "${REG[switchyard]:-}"), calls/s $(ratio "${CALLS[switchyard-pbx]:-}" "${CALLS[switchyard]:-}") (target >= 0.90x)"
if [[ -n ${BASELINE:-} ]]; then
    echo "after vs before (BASELINE=$BASELINE):"
    for pair in "switchyard baseline" "switchyard-pbx baseline-pbx" "switchyard-wasm baseline-wasm"; do
        read -r after before <<<"$pair"
        printf '  %-16s REGISTER/s %s -> %s (%s), calls/s %s -> %s (%s)\n' "$after" \
            "${REG[$before]:-pending}" "${REG[$after]:-pending}" "$(ratio "${REG[$after]:-}" "${REG[$before]:-}")" \
            "${CALLS[$before]:-pending}" "${CALLS[$after]:-pending}" "$(ratio "${CALLS[$after]:-}" "${CALLS[$before]:-}")"
    done
fi
if [[ " $PHASES " == *" cpu "* ]]; then
    echo "proxy CPU per operation, median of $CPU_ROUNDS rounds (REGISTER at $CPU_REG_RATE/s, calls at $CPU_CALL_RATE/s, ${CPU_SECS}s):"
    for t in $TARGETS; do
        printf '  %-16s %8s µs/REGISTER (%s) %8s µs/call (%s)\n' "$t" \
            "$(median <<<"${CPU_RUNS[$t:register]:-}")" "${CPU_RUNS[$t:register]:-none}" \
            "$(median <<<"${CPU_RUNS[$t:call]:-}")" "${CPU_RUNS[$t:call]:-none}"
    done
fi
for t in $TARGETS; do
    [[ -n ${REG_DETAIL[$t]:-} ]] && echo "$t best REGISTER step: ${REG_DETAIL[$t]}"
    [[ -n ${CALL_DETAIL[$t]:-} ]] && echo "$t best call step: ${CALL_DETAIL[$t]}"
done
echo "bench time: $((SECONDS - START))s"
