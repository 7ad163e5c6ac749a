#!/usr/bin/env bash
# RSS per completed REGISTER transaction: a node holding RATE*SECS of them
# (UDP: each stays for Timer J, 32 s) against its RSS before. The 10k AORs
# are registered first and their transactions left to expire, so the
# bindings are in the baseline. Issue 18: target <= 200 B.
#
#   SKIP_BUILD=1 bash bench/register_memory.sh      # 300k REGISTERs at 10000/s
#   RATE=20000 SECS=30 BIN=/path/to/old/switchyard bash bench/register_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."; source bench/lib.sh
[[ -n ${SKIP_BUILD:-} || -n ${BIN:-} ]] || cargo build --release -p switchyard -q
BIN=${BIN:-target/release/switchyard}; IP=127.0.0.50; PORT=5060; RATE=${RATE:-10000}; SECS=${SECS:-30}
PIDS=(); WORK=$(mktemp -d); trap 'for p in "${PIDS[@]}"; do stop_pid "$p"; done; rm -rf "$WORK"' EXIT
"$BIN" run --no-auth --listen "udp:$IP:$PORT" --domain bench.test --log warn >"$WORK/node.log" 2>&1 & PIDS+=($!); node=$!
wait_udp_bound "$IP" "$PORT"
users_csv "$WORK/users.csv" 10000
reg() { sipp "$IP:$PORT" -sf tests/sipp/uac_register.xml -i 127.0.0.51 -bind_local -nostdin -r "$1" -m "$2" \
  -inf "$WORK/users.csv" -key domain bench.test -key uas 127.0.0.52:5070 -key expires 3600 -buff_size 4194304 -timeout 120 >/dev/null 2>&1 || true; }
reg 10000 10000; sleep 34 # the bindings stay, their transactions expire (Timer J)
rss0=$(awk '/VmRSS/ {print $2}' /proc/$node/status)
reg "$RATE" $((RATE*SECS))
rss1=$(awk '/VmRSS/ {print $2}' /proc/$node/status)
echo "rss with 10k bindings ${rss0} kB, after $((RATE*SECS)) more REGISTERs ${rss1} kB: $(( (rss1-rss0)*1024/(RATE*SECS) )) B per completed REGISTER transaction (all still in Timer J)"
