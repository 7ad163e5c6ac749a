#!/usr/bin/env bash
# Switchyard with the Cassandra (or ScyllaDB) location store: REGISTER/s and
# lookup latency (INVITE to a registered user), measured with SIPp.
#
#   SWITCHYARD_CASSANDRA=10.0.0.5:9042 bash bench/cassandra.sh
#   SWITCHYARD_CASSANDRA=10.0.0.5:9042,10.0.0.6:9042 SWITCHYARD_CASSANDRA_DC=dc1 \
#       SWITCHYARD_CASSANDRA_RF=3 bash bench/cassandra.sh
#
# Environment:
#   SWITCHYARD_CASSANDRA           contact points, host:port[,host:port...] (required)
#   SWITCHYARD_CASSANDRA_DC        the local data centre's name (default dc1)
#   SWITCHYARD_CASSANDRA_RF        replication factor in that DC (default 1; use
#                                  3 on a real cluster for realistic figures)
#   SWITCHYARD_CASSANDRA_KEYSPACE  keyspace, created if missing (default
#                                  switchyard_bench; its rows expire on their own
#                                  after BIND_EXPIRES seconds, row TTL)
#   SWITCHYARD_CASSANDRA_USER / SWITCHYARD_CASSANDRA_PASSWORD   if auth is on
#   SWITCHYARD_CASSANDRA_READ_CL / SWITCHYARD_CASSANDRA_WRITE_CL
#                                  consistency (default: the backend's,
#                                  LOCAL_QUORUM)
#   SKIP_BUILD=1                   use the existing release binary
#   SWITCHYARD_BIN=PATH            use this binary (implies SKIP_BUILD)
#   BASELINE=0                     skip the embedded-store baseline run
#   KEEP=1                         keep the work directory (config, logs)
#
# Measures, with the Cassandra backend and (BASELINE=1, default) with the
# embedded store on the same machine for comparison:
#   register  the highest REGISTER rate (SIPp -r) at which < 0.1% fail and
#             SIPp achieves >= 95% of the rate; each REGISTER is one new
#             binding (one row write, plus the ordering read: <= 2 round
#             trips), users drawn in turn from USERS distinct AORs.
#   lookup    INVITE -> 200 response time (p50/p90/p99/max, ms) for calls to
#             registered users at LOOKUP_RATE calls/s: one store read per
#             INVITE, plus two proxy hops and an immediate SIPp UAS answer.
#             The difference to the embedded baseline is the store's cost.
#
# Bounded: every SIPp run has a timeout, and the whole script stops itself
# after MAX_SECS (default 1200 s). Everything SIP stays on 127.0.0.x; the
# only traffic off this machine is the proxy's to the contact points. Every
# process started here is stopped on exit.

set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

if [[ -z ${SWITCHYARD_CASSANDRA:-} ]]; then
    cat >&2 <<'EOF'
bench/cassandra.sh needs a Cassandra or ScyllaDB cluster:
  SWITCHYARD_CASSANDRA=host:port[,host:port] [SWITCHYARD_CASSANDRA_DC=dc1] bash bench/cassandra.sh
(see docs/cassandra.md). Nothing was run.
EOF
    exit 2
fi

MAX_SECS=${MAX_SECS:-1200}
# Re-run under timeout(1) once, so that the whole run is bounded; TERM
# reaches the trap below, which stops everything this script started.
if [[ -z ${_SWITCHYARD_BENCH_BOUNDED:-} ]]; then
    export _SWITCHYARD_BENCH_BOUNDED=1
    exec timeout --foreground -k 15 "$MAX_SECS" bash "$0" "$@"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCEN="$ROOT/tests/sipp"
DOMAIN=bench.test
CASS_DC=${SWITCHYARD_CASSANDRA_DC:-dc1}
CASS_RF=${SWITCHYARD_CASSANDRA_RF:-1}
CASS_KS=${SWITCHYARD_CASSANDRA_KEYSPACE:-switchyard_bench}
REQUEST_TIMEOUT_MS=${REQUEST_TIMEOUT_MS:-2000}
BASELINE=${BASELINE:-1}
STEP_SECS=${STEP_SECS:-5}        # length of one REGISTER rate step
BISECT=${BISECT:-3}              # bisection rounds after the doubling stops
REG_START=${REG_START:-500}      # first REGISTER/s step
REG_MAX=${REG_MAX:-32000}
USERS=${USERS:-10000}
BIND_EXPIRES=${BIND_EXPIRES:-600} # Expires of the benchmark's bindings (= row TTL)
BIND_RATE=${BIND_RATE:-1000}     # REGISTER/s when binding users before the lookup phase
LOOKUP_RATE=${LOOKUP_RATE:-200}  # calls/s during the lookup phase
LOOKUP_CALLS=${LOOKUP_CALLS:-5000}
MAX_FAIL_PPM=1000                # 0.1 %
MIN_ACHIEVED_PCT=95

SY_ADDR=127.0.0.50  # switchyard
PORT=5060
UAC_IP=127.0.0.51
UAS_IP=127.0.0.52
UAS_PORT=5070

[[ $CASS_RF =~ ^[1-9][0-9]*$ ]] || { echo "SWITCHYARD_CASSANDRA_RF must be a positive integer" >&2; exit 2; }
[[ $CASS_KS =~ ^[A-Za-z][A-Za-z0-9_]{0,47}$ ]] || { echo "SWITCHYARD_CASSANDRA_KEYSPACE: letters, digits, _ (<= 48)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/switchyard-bench-cassandra.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ -n ${KEEP:-} ]]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

toml_str() { # a TOML basic string
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

SIPP_COMMON=(-nostdin -bind_local -buff_size 4194304 -recv_timeout 4000
    -max_recv_loops 10000 -max_sched_loops 10000 -trace_stat -fd 3600 -trace_err)

# run_uac NAME SCENARIO RATE CALLS [extra sipp args]
# -> prints "successful failed elapsed_seconds"; runs in $WORK/NAME (where
# SIPp also writes its -trace_rtt file).
run_uac() {
    local name=$1 scenario=$2 rate=$3 calls=$4
    shift 4
    local dir="$WORK/$name" t0 t1
    mkdir -p "$dir"
    t0=$(date +%s.%N)
    (cd "$dir" && timeout $((calls / rate + 30)) sipp "$SY_ADDR:$PORT" -sf "$scenario" \
        -i "$UAC_IP" -r "$rate" -m "$calls" -l $((rate * 5 + 100)) \
        -stf "$dir/stat.csv" -error_file "$dir/errors.log" "${SIPP_COMMON[@]}" "$@" \
        >/dev/null 2>"$dir/stderr.log") || true
    t1=$(date +%s.%N)
    if [[ ! -s $dir/stat.csv ]]; then
        echo "0 $calls 1"
        return
    fi
    echo "$(stat "$dir/stat.csv" 'SuccessfulCall(C)') $(stat "$dir/stat.csv" 'FailedCall(C)') $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

# --- configuration --------------------------------------------------------

write_config() { # write_config BACKEND FILE
    local backend=$1 file=$2 cps="" cp list
    IFS=, read -r -a list <<<"$SWITCHYARD_CASSANDRA"
    for cp in "${list[@]}"; do
        cp=${cp// /}
        [[ -n $cp ]] || continue
        cps+="${cps:+, }$(toml_str "$cp")"
    done
    {
        echo "# Written by bench/cassandra.sh"
        echo 'node_id = "bench-cassandra"'
        echo "listen = [\"udp:$SY_ADDR:$PORT\"]"
        echo "domains = [\"$DOMAIN\"]"
        echo
        echo "[store]"
        echo "backend = \"$backend\""
        if [[ $backend == cassandra ]]; then
            echo
            echo "[store.cassandra]"
            echo "contact_points = [$cps]"
            echo "local_dc = $(toml_str "$CASS_DC")"
            echo "keyspace = \"$CASS_KS\""
            echo "replication = { $(toml_str "$CASS_DC") = $CASS_RF }"
            [[ -n ${SWITCHYARD_CASSANDRA_READ_CL:-} ]] && echo "read_consistency = $(toml_str "$SWITCHYARD_CASSANDRA_READ_CL")"
            [[ -n ${SWITCHYARD_CASSANDRA_WRITE_CL:-} ]] && echo "write_consistency = $(toml_str "$SWITCHYARD_CASSANDRA_WRITE_CL")"
            echo "request_timeout_ms = $REQUEST_TIMEOUT_MS"
            [[ -n ${SWITCHYARD_CASSANDRA_USER:-} ]] && echo "username = $(toml_str "$SWITCHYARD_CASSANDRA_USER")"
            [[ -n ${SWITCHYARD_CASSANDRA_PASSWORD:-} ]] && echo "password = $(toml_str "$SWITCHYARD_CASSANDRA_PASSWORD")"
            echo "create_schema = true"
        fi
    } >"$file"
    [[ -n $cps ]] || { log "SWITCHYARD_CASSANDRA holds no contact point"; return 1; }
}

# --- proxy and UAS --------------------------------------------------------

start_switchyard() { # BACKEND -> PROXY_PID
    local backend=$1
    wait_port_free "$SY_ADDR" "$PORT" || { log "$SY_ADDR:$PORT is taken by another process"; return 1; }
    "$BIN" run --no-auth --config "$WORK/$backend.toml" --log warn >>"$WORK/switchyard-$backend.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    # Up to 30 s: with create_schema the first start creates keyspace and
    # table (schema agreement across the cluster) before listening.
    wait_udp_bound "$SY_ADDR" "$PORT" 3000 || {
        log "switchyard ($backend) did not bind $SY_ADDR:$PORT:"
        tail -5 "$WORK/switchyard-$backend.log" >&2
        stop_pid "$PROXY_PID"
        return 1
    }
}

start_uas() {
    sipp -sf "$SCEN/uas_answer.xml" -i "$UAS_IP" -p "$UAS_PORT" \
        -nostdin -bind_local -buff_size 4194304 -max_recv_loops 10000 -max_sched_loops 10000 \
        -trace_err -error_file "$WORK/uas.err" >/dev/null 2>"$WORK/uas.stderr" &
    UAS_PID=$!
    PIDS+=("$UAS_PID")
    wait_udp_bound "$UAS_IP" "$UAS_PORT" || { log "UAS did not start"; stop_pid "$UAS_PID"; return 1; }
}

# --- benchmarks -----------------------------------------------------------

STEP_NO=0
register_step() {
    local rate=$1 calls res ok failed elapsed
    calls=$((rate * STEP_SECS))
    STEP_NO=$((STEP_NO + 1))
    start_switchyard "$BACKEND" || return 1
    # Fresh user names per step (prefix) so each REGISTER is a new binding.
    users_csv "$WORK/users-reg.csv" "$calls" "r${STEP_NO}u"
    res=$(run_uac "reg-$BACKEND-$rate" "$SCEN/uac_register.xml" "$rate" "$calls" \
        -inf "$WORK/users-reg.csv" -key domain "$DOMAIN" -key uas "$UAS_IP:$UAS_PORT" \
        -key expires "$BIND_EXPIRES" -p 5080)
    stop_pid "$PROXY_PID"
    read -r ok failed elapsed drops <<<"$res"
    if verdict "$rate" "$calls" "$ok" "$failed" "$elapsed"; then
        log "  REGISTER $rate/s: $ok ok, $failed failed in ${elapsed}s: pass"
        REG_DETAIL[$BACKEND]="$ok ok / $failed failed in ${elapsed}s at $rate/s"
        return 0
    fi
    log "  REGISTER $rate/s: $ok ok, $failed failed in ${elapsed}s: FAIL"
    return 1
}

# Percentiles of SIPp's -trace_rtt file (Date_ms;response_time_ms;rtd_no).
rtt_percentiles() { # DIR -> "p50 p90 p99 max count" in ms, or "- - - - 0"
    local f
    f=$(find "$1" -maxdepth 1 -name '*_rtt.csv' 2>/dev/null | head -1) || true
    [[ -n $f && -s $f ]] || { echo "- - - - 0"; return; }
    awk -F';' 'NR > 1 && $2 ~ /^[0-9.]+$/ { print $2 }' "$f" | sort -g | awk '
        { v[NR] = $1 }
        function pct(p,  i) { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; return v[i] }
        END {
            if (NR == 0) { print "- - - - 0"; exit }
            printf "%.2f %.2f %.2f %.2f %d\n", pct(50), pct(90), pct(99), v[NR], NR }'
}

lookup_phase() {
    local res ok failed elapsed
    start_switchyard "$BACKEND" || return 1
    start_uas || { stop_pid "$PROXY_PID"; return 1; }
    users_csv "$WORK/users-call.csv" "$USERS" "c${BACKEND}u"
    log "  binding $USERS users at $BIND_RATE/s"
    res=$(run_uac "bind-$BACKEND" "$SCEN/uac_register.xml" "$BIND_RATE" "$USERS" \
        -inf "$WORK/users-call.csv" -key domain "$DOMAIN" -key uas "$UAS_IP:$UAS_PORT" \
        -key expires "$BIND_EXPIRES" -p 5081)
    read -r ok failed _ _ <<<"$res"
    log "  $ok bound, $failed failed"
    res=$(run_uac "call-$BACKEND" "$SCEN/uac_call.xml" "$LOOKUP_RATE" "$LOOKUP_CALLS" \
        -inf "$WORK/users-call.csv" -key domain "$DOMAIN" -p 5082 -trace_rtt -rtt_freq 1)
    stop_pid "$UAS_PID"
    stop_pid "$PROXY_PID"
    read -r ok failed elapsed drops <<<"$res"
    LOOKUP_OK[$BACKEND]="$ok ok / $failed failed in ${elapsed}s"
    LOOKUP_RTT[$BACKEND]=$(rtt_percentiles "$WORK/call-$BACKEND")
    log "  calls: ${LOOKUP_OK[$BACKEND]}; INVITE->200 ms p50 p90 p99 max n: ${LOOKUP_RTT[$BACKEND]}"
}

bench_backend() {
    BACKEND=$1
    log "== $BACKEND store"
    write_config "$BACKEND" "$WORK/$BACKEND.toml" || return 0
    if ! "$BIN" check-config "$WORK/$BACKEND.toml" >"$WORK/check-$BACKEND.log" 2>&1; then
        log "switchyard refuses the $BACKEND config ($WORK/$BACKEND.toml, KEEP=1 keeps it):"
        tail -5 "$WORK/check-$BACKEND.log" >&2
        return 0
    fi
    # One start first: creates the schema, and fails early if the cluster
    # cannot be reached.
    if ! start_switchyard "$BACKEND"; then
        log "$BACKEND: switchyard would not start: skipped"
        return 0
    fi
    stop_pid "$PROXY_PID"
    log "REGISTER ramp from $REG_START/s, ${STEP_SECS}s steps"
    ramp "$REG_START" "$REG_MAX" register_step
    REG[$BACKEND]=$RAMP_RESULT
    log "lookup: $LOOKUP_CALLS calls at $LOOKUP_RATE/s to $USERS registered users"
    lookup_phase || log "lookup phase failed to start"
}

# --- main -----------------------------------------------------------------

command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 1; }
command -v ss >/dev/null || { echo "ss not found: apt-get install iproute2" >&2; exit 1; }
declare -A REG REG_DETAIL LOOKUP_OK LOOKUP_RTT

if [[ -n ${SWITCHYARD_BIN:-} ]]; then
    BIN=$SWITCHYARD_BIN
else
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
    if [[ -z ${SKIP_BUILD:-} ]]; then
        log "building switchyard (release)"
        (cd "$ROOT" && cargo build --release -p switchyard >"$WORK/build.log" 2>&1) ||
            { log "build failed:"; tail -20 "$WORK/build.log" >&2; exit 1; }
    fi
fi
[[ -x $BIN ]] || { echo "no switchyard binary at $BIN" >&2; exit 1; }

START=$SECONDS
BACKENDS=cassandra
[[ $BASELINE == 1 ]] && BACKENDS="cassandra embedded"
for b in $BACKENDS; do bench_backend "$b"; done

# --- report ---------------------------------------------------------------

echo
echo "Switchyard location store benchmark ($(nproc) cores, SIPp $(sipp -v 2>/dev/null | awk '/SIPp v/ { print $2; exit }'))"
echo "cassandra: $SWITCHYARD_CASSANDRA, local DC $CASS_DC, RF $CASS_RF, keyspace $CASS_KS," \
    "consistency read ${SWITCHYARD_CASSANDRA_READ_CL:-default} / write ${SWITCHYARD_CASSANDRA_WRITE_CL:-default}"
printf '%-40s %14s %14s\n' "metric" "cassandra" "embedded"
printf '%-40s %14s %14s\n' "REGISTER/s (new bindings, fail < 0.1%)" "${REG[cassandra]:-pending}" "${REG[embedded]:--}"
for i in 1 2 3 4; do
    label=$(echo "p50 p90 p99 max" | cut -d' ' -f"$i")
    c=$(echo "${LOOKUP_RTT[cassandra]:-- - - - 0}" | cut -d' ' -f"$i")
    e=$(echo "${LOOKUP_RTT[embedded]:-- - - - 0}" | cut -d' ' -f"$i")
    printf '%-40s %14s %14s\n' "INVITE->200 ms $label (@$LOOKUP_RATE/s)" "$c" "$e"
done
for b in $BACKENDS; do
    [[ -n ${REG_DETAIL[$b]:-} ]] && echo "$b best REGISTER step: ${REG_DETAIL[$b]}"
    [[ -n ${LOOKUP_OK[$b]:-} ]] && echo "$b lookup calls: ${LOOKUP_OK[$b]}"
done
echo "(INVITE->200 = one store lookup + two proxy hops + an immediate UAS answer;"
echo " cassandra minus embedded is the store's share. Bindings expire after ${BIND_EXPIRES}s via row TTL.)"
echo "bench time: $((SECONDS - START))s"
