#!/usr/bin/env bash
# Bulk UDP through a CONNECT-UDP tunnel, in the test topology
# (tests/netns/lib.sh): a sender in the client namespace pushes datagrams
# into `masq forward`, the server relays them to a sink in the target
# namespace, and the sink reports goodput and loss. For comparison the
# same sender runs once over the plain veth (client -> server address).
#
#   bench/udp_bulk.sh BUILD_DIR [SECONDS] [SIZE]
# Prints one line per rate; the result is the highest rate with < 1% loss.
set -eu
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [SECONDS] [SIZE]}" && pwd)
SECS=${2:-5}
SIZE=${3:-1200}
MASQ=$BUILD/masq
. "$(dirname "$0")/../tests/netns/lib.sh"
TEST_NAME=udp-bulk
topo_up
UB=$BUILD/udpbench

run() { # label sender-ns host port mbps sink-ns sink-port
  local label=$1 ns=$2 host=$3 port=$4 mbps=$5 sinkns=$6 sinkport=$7
  bg sink ip netns exec "$sinkns" "$UB" sink "$sinkport" "$SECS"
  local spid=$LAST_PID
  wait_log "$TMP/sink.log" ready
  local sent
  sent=$(ip netns exec "$ns" "$UB" send "$host" "$port" "$SIZE" "$mbps" "$SECS")
  wait "$spid" || true
  printf '%-10s offered %6s Mbit/s: %s | %s\n' "$label" "$mbps" \
    "$(sed -E 's/.*\(([0-9.]+) Mbit\/s offered\).*/\1/' <<<"$sent")" "$(tail -n 1 "$TMP/sink.log")"
}

start_server
start_forward fwd --udp 127.0.0.1:5001:$T4:9001
echo "== $(nproc) cores, payload $SIZE bytes, $SECS s per rate"
for r in ${RATES:-200 400 800 1200 1600 2000 0}; do
  run masq "$NS_C" 127.0.0.1 5001 "$r" "$NS_T" 9001
done
for r in ${RATES:-200 800 1600 0}; do
  run direct "$NS_C" "$S4" 9002 "$r" "$NS_S" 9002
done
