#!/usr/bin/env bash
# REGISTER/s with the embedded store vs the Cassandra backend pointed at a
# port where nothing listens (issue 4): with the store down, every REGISTER
# must still be answered (503 + Retry-After) within request_timeout + 10%.
#
#   bash bench/store_failfast.sh            # builds the release binary first
#   SKIP_BUILD=1 RATE=4000 N=40000 bash bench/store_failfast.sh
#
# Everything runs on 127.0.0.x and stops itself; no Cassandra is needed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${RATE:-4000}
N=${N:-40000}
TIMEOUT_MS=${TIMEOUT_MS:-500}
PROXY=127.0.0.60
UAC=127.0.0.61
WORK=$(mktemp -d /tmp/switchyard-failfast.XXXXXX)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

[[ -n ${SKIP_BUILD:-} ]] || (cd "$ROOT" && cargo build --release -p switchyard >/dev/null 2>&1)
BIN=$ROOT/target/release/switchyard
for i in $(seq 0 9999); do echo "user$i"; done | (echo SEQUENTIAL; cat) >"$WORK/users.csv"
sed 's/<recv response="200" rtd="true"\/>/<recv response="503" rtd="true"\/>/' \
    "$ROOT/tests/sipp/uac_register.xml" >"$WORK/uac_register_503.xml"

# A port that was free a moment ago and now has no listener.
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

run() { # run NAME SCENARIO CONFIG -> prints "rate ok failed max_ms"
    local name=$1 scenario=$2 config=$3
    "$BIN" --log error run --no-auth --config "$config" >"$WORK/$name.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do ss -Hlun "src $PROXY:5060" | grep -q . && break; sleep 0.05; done
    local start end
    start=$(date +%s.%N)
    # SIPp writes its -trace_rtt file into the current directory.
    (cd "$WORK" && timeout $((N / RATE + 30)) sipp "$PROXY:5060" -sf "$scenario" -i "$UAC" -p 5090 -r "$RATE" -m "$N" \
        -l $((RATE * 5)) -inf "$WORK/users.csv" -key domain bench.test -key uas 127.0.0.62:5070 \
        -key expires 3600 -buff_size 4194304 -trace_stat -stf "$WORK/$name.csv" -trace_rtt \
        -rtt_freq 1 >/dev/null 2>&1) || true
    end=$(date +%s.%N)
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    local ok failed max
    ok=$(tail -1 "$WORK/$name.csv" | awk -F';' '{print $16}')   # SuccessfulCall(C)
    failed=$(tail -1 "$WORK/$name.csv" | awk -F';' '{print $18}') # FailedCall(C)
    max=$(awk -F';' 'FNR>1 && $2+0>m {m=$2+0} END {printf "%.1f", m}' "$WORK"/*_rtt.csv)
    rm -f "$WORK"/*_rtt.csv
    printf '%s %.0f %s %s %s\n' "$name" "$(echo "$N / ($end - $start)" | bc -l)" "$ok" "$failed" "$max"
}

cat >"$WORK/embedded.toml" <<TOML
listen = ["udp:$PROXY:5060"]
domains = ["bench.test"]
[egress]
allow = ["127.0.0.0/8"]
dns = false
TOML
cat >"$WORK/cassandra.toml" <<TOML
listen = ["udp:$PROXY:5060"]
domains = ["bench.test"]
[store]
backend = "cassandra"
[store.cassandra]
contact_points = ["127.0.0.1:$CLOSED"]
request_timeout_ms = $TIMEOUT_MS
[egress]
allow = ["127.0.0.0/8"]
dns = false
TOML

echo "REGISTER at $RATE/s, $N requests; Cassandra pointed at 127.0.0.1:$CLOSED (nothing listening), request_timeout_ms=$TIMEOUT_MS"
printf '%-10s %12s %10s %8s %16s\n' store "achieved/s" answered failed "max resp (ms)"
read -r n r ok f m < <(run embedded "$ROOT/tests/sipp/uac_register.xml" "$WORK/embedded.toml")
printf '%-10s %12s %10s %8s %16s\n' "$n (200)" "$r" "$ok" "$f" "$m"
read -r n r ok f m < <(run cassandra "$WORK/uac_register_503.xml" "$WORK/cassandra.toml")
printf '%-10s %12s %10s %8s %16s\n' "$n (503)" "$r" "$ok" "$f" "$m"
limit=$(echo "$TIMEOUT_MS * 1.1" | bc -l)
if (( f == 0 )) && (( $(echo "$m <= $limit" | bc -l) )); then
    echo "fail-fast: every REGISTER answered 503 within ${TIMEOUT_MS} ms + 10%"
else
    echo "fail-fast: NOT met (failed $f, max $m ms, limit $limit ms)"; exit 1
fi
