#!/usr/bin/env bash
# Calls through one node whose SIP domain is its own IP address, with the
# callees on the proxy's host at another port: the softphone shape of
# issue 12. Before the fix every BYE got 480 (0 of 2,500 calls completed at
# 250 calls/s); every call must complete.
#
#   bash bench/domain_is_ip.sh                 # 2,500 calls at 250/s, UDP
#   CALLS=10000 RATE=1000 TRANSPORT=tcp bash bench/domain_is_ip.sh
#
# Prints one line: calls offered, successful, failed, elapsed seconds.
# Traffic stays on 127.0.70.1. SKIP_BUILD=1 uses target/release as built; BIN= another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

IP=${IP:-127.0.70.1}
PORT=${PORT:-5090}
UAS_PORT=${UAS_PORT:-5070}
CALLS=${CALLS:-2500}
RATE=${RATE:-250}
USERS=${USERS:-100}
TRANSPORT=${TRANSPORT:-udp}
PIDS=()
WORK=$(mktemp -d)
trap 'for p in "${PIDS[@]}"; do stop_pid "$p"; done; rm -rf "$WORK"' EXIT

case $TRANSPORT in
udp) tflag=u1 contact_tp="" ;;
tcp) tflag=t1 contact_tp=";transport=tcp" ;;
*) echo "TRANSPORT is udp or tcp" >&2; exit 2 ;;
esac

BIN=${BIN:-target/release/switchyard}
[[ ${SKIP_BUILD:-0} == 1 || $BIN != target/release/switchyard ]] || cargo build --release -p switchyard -q
"$BIN" run --no-auth --listen "udp:$IP:$PORT" --listen "tcp:$IP:$PORT" \
    --domain "$IP" --log warn >"$WORK/node.log" 2>&1 &
PIDS+=($!)
wait_udp_bound "$IP" "$PORT" || { log "node did not start"; cat "$WORK/node.log"; exit 1; }

SCEN=tests/sipp
sipp -sf "$SCEN/uas_answer.xml" -i "$IP" -p "$UAS_PORT" -t "$tflag" -nostdin -bind_local \
    -trace_err -error_file "$WORK/uas_err.log" >/dev/null 2>"$WORK/uas.stderr" &
PIDS+=($!)
if [[ $TRANSPORT == udp ]]; then wait_udp_bound "$IP" "$UAS_PORT"; else wait_tcp_bound "$IP" "$UAS_PORT"; fi

users_csv "$WORK/users.csv" "$USERS" callee
# Registered from another IP so a TCP binding points at the callee's
# Contact, not at the registering connection.
sipp "$IP:$PORT" -sf "$SCEN/uac_register.xml" -i 127.0.70.2 -bind_local -nostdin -t "$tflag" -m "$USERS" -r 500 \
    -inf "$WORK/users.csv" -key domain "$IP" -key uas "$IP:$UAS_PORT$contact_tp" \
    -key expires 3600 -timeout 30 >/dev/null

users_csv "$WORK/calls.csv" "$USERS" callee
start=$(date +%s.%N)
rc=0
sipp "$IP:$PORT" -sf "$SCEN/uac_call.xml" -i "$IP" -bind_local -nostdin -t "$tflag" -m "$CALLS" -r "$RATE" \
    -inf "$WORK/calls.csv" -key domain "$IP" -timeout 120 \
    -trace_stat -stf "$WORK/stat.csv" >/dev/null 2>&1 || rc=$?
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
ok=$(stat "$WORK/stat.csv" SuccessfulCall\(C\))
failed=$(stat "$WORK/stat.csv" FailedCall\(C\))
printf 'domain=%s transport=%s offered=%s successful=%s failed=%s elapsed_s=%.1f sipp_rc=%s\n' \
    "$IP" "$TRANSPORT" "$CALLS" "$ok" "$failed" "$elapsed" "$rc"
[[ $ok == "$CALLS" ]]
