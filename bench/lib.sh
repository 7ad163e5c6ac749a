# Shell helpers shared by the SIPp benchmarks (bench/run.sh,
# bench/cassandra.sh, bench/auth.sh, bench/flood.sh); sourced, not run. The caller provides PIDS (pids
# to stop on exit), MAX_FAIL_PPM, MIN_ACHIEVED_PCT and BISECT.

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

forget_pid() { # drop a stopped pid from the cleanup list
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_pid() {
    # Its children too (Kamailio's workers): once the parent is killed
    # they are reparented and would keep the listening socket.
    local children
    children=$(pgrep -P "$1" 2>/dev/null || true)
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    # shellcheck disable=SC2086
    kill -KILL "$1" $children 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}

wait_udp_bound() { # ADDR PORT [tries of 10 ms]
    local addr=$1 port=$2 tries=${3:-500} i
    for ((i = 0; i < tries; i++)); do
        ss -Hlun "src $addr:$port" 2>/dev/null | grep -q . && return 0
        sleep 0.01
    done
    return 1
}

wait_tcp_bound() {
    local addr=$1 port=$2 i
    for i in $(seq 500); do
        ss -Hltn "src $addr:$port" 2>/dev/null | grep -q . && return 0
        sleep 0.01
    done
    return 1
}

# Wait until nothing is bound to ADDR:PORT (udp or tcp): a proxy's worker
# processes may outlive its main process for a moment.
wait_port_free() {
    local addr=$1 port=$2 i
    for i in $(seq 500); do
        ss -Hlun "src $addr:$port" 2>/dev/null | grep -q . ||
            ss -Hltn "src $addr:$port" 2>/dev/null | grep -q . || return 0
        sleep 0.01
    done
    return 1
}

users_csv() { # users_csv FILE N [PREFIX]
    awk -v n="$2" -v p="${3:-user}" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "%s%d;\n", p, i }' >"$1"
}

# stat FILE COLUMN -> the last row's value of that -trace_stat column.
stat() {
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        NF > 1  { v = $c }
        END     { print (c && v != "" ? v : 0) }' "$1"
}

# verdict RATE CALLS SUCCESSFUL FAILED ELAPSED -> exit 0 if the step passed
verdict() {
    local rate=$1 calls=$2 ok=$3 failed=$4 elapsed=$5
    awk -v r="$rate" -v n="$calls" -v ok="$ok" -v f="$failed" -v e="$elapsed" \
        -v ppm="$MAX_FAIL_PPM" -v pct="$MIN_ACHIEVED_PCT" 'BEGIN {
            done = ok + f
            if (done < n) exit 1                          # calls never finished
            if (f * 1e6 > ppm * done) exit 1              # too many failures
            if (e <= 0 || ok / e < r * pct / 100) exit 1  # rate not achieved
            exit 0 }'
}

# ramp START MAX STEP_FN -> RAMP_RESULT = the highest passing rate (0 if none).
# STEP_FN RATE -> exit 0 if that rate passes. (Not a $(subshell): the step
# functions record details in globals.)
ramp() {
    local rate=$1 max=$2 step_fn=$3 good=0 bad=0 i mid
    while ((rate <= max)); do
        if "$step_fn" "$rate"; then good=$rate; rate=$((rate * 2)); else bad=$rate; break; fi
    done
    if ((bad == 0)); then RAMP_RESULT=$good; return; fi
    # Bisect between the last pass (maybe 0) and the first failure.
    local low=$good high=$bad
    for ((i = 0; i < BISECT; i++)); do
        mid=$(((low + high) / 2))
        ((mid > low)) || break
        if "$step_fn" "$mid"; then low=$mid; else high=$mid; fi
    done
    RAMP_RESULT=$low
}

# Common SIPp flags: big socket buffers (the default 64 KiB drops datagrams
# at these rates, which would measure SIPp, not the proxy), no keyboard,
# statistics and errors into files, and a receive timeout so a lost
# message fails its call in seconds instead of hanging the step.
SIPP_COMMON=(-nostdin -bind_local -buff_size 4194304 -recv_timeout 4000
    -max_recv_loops 10000 -max_sched_loops 10000 -trace_stat -fd 3600 -trace_err)

# run_uac NAME PROXY SCENARIO RATE CALLS [extra sipp args]
# -> prints "successful failed elapsed_seconds". Uses the caller's WORK
# (stat and error files), PORT (the proxy's), UAC_IP, and LOAD_PIN if set
# (a command prefix such as `taskset -c 1`).
# UDP datagrams the kernel dropped for a full receive buffer, machine-wide
# (/proc/net/snmp `Udp: RcvbufErrors`): a proxy (or SIPp) reading too slowly.
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (!n++) { for (i = 1; i <= NF; i++) col[$i] = i } else { print $col["RcvbufErrors"]; exit } }' /proc/net/snmp
}

# run_uac NAME PROXY SCENARIO RATE CALLS [sipp args] -> "OK FAILED ELAPSED RCVBUF_DROPS"
run_uac() {
    local name=$1 proxy=$2 scenario=$3 rate=$4 calls=$5
    shift 5
    local stf="$WORK/$name.stat" t0 t1 drops0
    drops0=$(udp_rcvbuf_errors)
    rm -f "$stf"
    # Wall clock, not SIPp's ElapsedTime: the stat file only has whole seconds.
    t0=$(date +%s.%N)
    # Bounded: the calls themselves plus retransmission/timeout slack.
    local pin=("${LOAD_PIN[@]+"${LOAD_PIN[@]}"}")
    timeout $((calls / rate + 30)) "${pin[@]}" sipp "$proxy:$PORT" -sf "$scenario" \
        -i "$UAC_IP" -r "$rate" -m "$calls" -l $((rate * 5 + 100)) \
        -stf "$stf" -error_file "$WORK/$name.err" "${SIPP_COMMON[@]}" "$@" \
        >/dev/null 2>"$WORK/$name.stderr" || true
    t1=$(date +%s.%N)
    local drops=$(($(udp_rcvbuf_errors) - drops0))
    if [[ ! -s $stf ]]; then
        echo "0 $calls 1 $drops"
        return
    fi
    echo "$(stat "$stf" 'SuccessfulCall(C)') $(stat "$stf" 'FailedCall(C)') $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $drops"
}

# write_users: users user0..user(USERS-1) and CALLEE of DOMAIN, password
# "pw-<user>-<run>", into WORK: Switchyard's subscriber file (HA1s per
# algorithm, as `switchyard user add` would) and auth config (auth.toml),
# Kamailio's db_text tables (kamdb/), and the SIPp injection files
# users.csv (AOR user; credentials), callee.csv, calls.csv (callee;
# caller; its credentials). Uses the caller's WORK, DOMAIN, USERS, CALLEE.
write_users() {
    python3 - "$WORK" "$DOMAIN" "$USERS" "$CALLEE" <<'EOF'
import hashlib, os, sys
work, realm, n, callee = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
salt = os.urandom(4).hex()
def h(alg, s):
    return hashlib.new(alg, s.encode()).hexdigest()
users = [f"user{i}" for i in range(n)] + [callee]
pw = {u: f"pw-{u}-{salt}" for u in users}
with open(f"{work}/subscribers.toml", "w") as f:
    for u in users:
        a1 = f"{u}:{realm}:{pw[u]}"
        f.write(f'[[user]]\nrealm = "{realm}"\nuser = "{u}"\n'
                f'ha1_md5 = "{h("md5", a1)}"\nha1_sha256 = "{h("sha256", a1)}"\n'
                f'ha1_sha512_256 = "{h("sha512_256", a1)}"\n\n')
os.makedirs(f"{work}/kamdb", exist_ok=True)
with open(f"{work}/kamdb/version", "w") as f:
    f.write("id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n")
with open(f"{work}/kamdb/subscriber", "w") as f:
    f.write("id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) \n")
    for i, u in enumerate(users, 1):
        f.write(f"{i}:{u}:{realm}:{pw[u]}:{h('md5', f'{u}:{realm}:{pw[u]}')}:"
                f"{h('md5', f'{u}@{realm}:{realm}:{pw[u]}')}\n")
auth = lambda u: f"[authentication username={u} password={pw[u]}]"
with open(f"{work}/users.csv", "w") as f:      # field0 AOR, field1 credentials
    f.write("SEQUENTIAL\n")
    for u in users[:n]:
        f.write(f"{u};{auth(u)};\n")
with open(f"{work}/callee.csv", "w") as f:
    f.write(f"SEQUENTIAL\n{callee};{auth(callee)};\n")
with open(f"{work}/calls.csv", "w") as f:      # field0 callee, field1 caller, field2 its credentials
    f.write("SEQUENTIAL\n")
    for u in users[:n]:
        f.write(f"{callee};{u};{auth(u)};\n")
with open(f"{work}/auth.toml", "w") as f:
    f.write(f'[auth]\nenabled = true\nsubscribers = "{work}/subscribers.toml"\n')
EOF
}

# CPU time of a proxy, for µs of CPU per request (steadier than rates on a
# shared machine: it does not depend on whether SIPp keeps up).
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # PID -> utime + stime of it and its children (clock ticks)
    local p total=0 t
    for p in $1 $(pgrep -P "$1"); do
        # Fields after "pid (comm) ": utime and stime are the 12th and 13th.
        t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# median: the median of the whitespace-separated numbers on stdin.
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# start_uas: the SIPp callee answering every call, on UAS_IP[TARGET]:UAS_PORT
# (the caller's SCEN, WORK, TARGET, PIDS); sets UAS_PID.
start_uas() {
    "${LOAD_PIN[@]+"${LOAD_PIN[@]}"}" sipp -sf "$SCEN/uas_answer.xml" -i "${UAS_IP[$TARGET]}" -p "$UAS_PORT" \
        -nostdin -bind_local -buff_size 4194304 -max_recv_loops 10000 -max_sched_loops 10000 \
        -trace_err -error_file "$WORK/uas-$TARGET.err" >/dev/null 2>"$WORK/uas-$TARGET.stderr" &
    UAS_PID=$!
    PIDS+=("$UAS_PID")
    wait_udp_bound "${UAS_IP[$TARGET]}" "$UAS_PORT" || { log "UAS did not start"; return 1; }
}
