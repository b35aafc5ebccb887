#!/usr/bin/env bash
# TCP throughput through a CONNECT-IP tunnel, against the same path
# without it, in the test topology (tests/netns/lib.sh). iperf3 serves in
# the target namespace; the client namespace runs iperf3 to 192.0.2.2:
#   direct  the server namespace routes between its two links (forwarding
#           on, a route each way), nothing else in the path;
#   masq    `masq server --nat` in the server namespace and `masq connect`
#           in the client namespace: the packets go client TUN -> QUIC over
#           the veth -> server TUN -> masqueraded out to the target.
# Each: one stream and 4 (-P 4), client to target and reverse (-R).
#
#   [MASQ_BENCH_CC=cubic] bench/ip_tcp.sh BUILD_DIR [SECONDS]
# Prints a table of goodput (iperf3's receiver side) and masq/direct.
# MASQ_BENCH_CC picks both ends' congestion control (--cc; default bbr);
# not CC, which many environments export as the C compiler.
set -eu
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [SECONDS]}" && pwd)
SECS=${2:-10}
MASQ=$BUILD/masq
# shellcheck source=../tests/netns/lib.sh
. "$(dirname "$0")/../tests/netns/lib.sh"
# shellcheck disable=SC2034 # read by lib.sh
TEST_NAME=ip-tcp
command -v iperf3 >/dev/null || { echo "ip_tcp: needs iperf3 (run scripts/setup.sh)" >&2; exit 1; }
topo_up

SRV_TUN=masqs0 CLI_TUN=masq0
CASES=("1 stream|" "4 streams|-P 4" "1 stream, reverse|-R" "4 streams, reverse|-R -P 4")

# A server killed rather than stopped leaves its NAT state file in
# /run/masq (nat.h); the namespace it describes is gone after cleanup.
# KEEP_LOGS=DIR keeps the processes' logs (masq's exit totals) there.
bench_cleanup() {
  set +e
  stop_all
  [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$TMP"/*.log "$KEEP_LOGS"/
  local ino
  ino=$(stat -L -c %i "/run/netns/$NS_S" 2>/dev/null) &&
    rm -f "/run/masq/nat-$SRV_TUN.$ino.state"
  cleanup
}
trap bench_cleanup EXIT

wait_tcp() { # NS PORT
  local i
  for ((i = 0; i < 200; i++)); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  fail "nothing listens on TCP port $2 in $1"
}

# iperf LABEL ARGS...: one iperf3 run from the client namespace to the
# target; prints the receiver's goodput in Gbit/s.
iperf() {
  local label=$1; shift
  local out=$TMP/iperf-$label.json
  timeout $((SECS + 30)) ip netns exec "$NS_C" iperf3 -c "$T4" -t "$SECS" --connect-timeout 3000 \
    -J "$@" >"$out" 2>&1 || fail "iperf3 $* failed (see $out): $(tail -n 3 "$out")"
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))' "$out" ||
    fail "cannot read iperf3's result from $out"
}

tun_bytes() { # NS DEV: rx+tx bytes of DEV
  local s=/sys/class/net/$2/statistics
  ip netns exec "$1" sh -c "echo \$((\$(cat $s/rx_bytes) + \$(cat $s/tx_bytes)))"
}

bg iperf3 n_t iperf3 -s
wait_tcp "$NS_T" 5201

# ---- direct ----
n_s sysctl -qw net.ipv4.ip_forward=1
n_c ip route add 192.0.2.0/24 via "$S4"
n_t ip route add 198.51.100.0/24 via "$SI4"
declare -A DIRECT MASQD
for c in "${CASES[@]}"; do
  label=${c%%|*} args=${c#*|}
  # shellcheck disable=SC2086
  DIRECT[$label]=$(iperf "direct-${label// /_}" $args)
  pretty "direct  $label: ${DIRECT[$label]} Gbit/s"
done
n_c ip route del 192.0.2.0/24 via "$S4"
n_t ip route del 198.51.100.0/24 via "$SI4"
n_s sysctl -qw net.ipv4.ip_forward=0
# Without the direct routes only the tunnel leads to the target.
n_c ip route get "$T4" >/dev/null 2>&1 && fail "the client still has a route to $T4 without the tunnel"

# ---- through masq ----
start_server --nat --tun "$SRV_TUN" --allow 192.0.2.0/24 --allow 2001:db8:2::/64 --cc "${MASQ_BENCH_CC:-bbr}"
# shellcheck disable=SC2086
bg connect n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" \
  --tun "$CLI_TUN" --cc "${MASQ_BENCH_CC:-bbr}" -v ${CONNECT_ARGS:-} # extra options, split on purpose
CONNECT_PID=$LAST_PID
# Ready once the client's routing sends the target into its TUN.
for ((i = 0; i < 300; i++)); do
  alive "$CONNECT_PID" "masq connect"
  n_c ip route get "$T4" 2>/dev/null | grep -q "dev $CLI_TUN" && break
  sleep 0.05
done
n_c ip route get "$T4" | grep -q "dev $CLI_TUN" || fail "no route to $T4 through $CLI_TUN after 15 s"
n_s nft list table inet "masq_$SRV_TUN" | grep -q masquerade || fail "no masquerade rule in the server namespace"

TUN_MTU=$(n_c cat "/sys/class/net/$CLI_TUN/mtu")
for c in "${CASES[@]}"; do
  label=${c%%|*} args=${c#*|}
  before=$(tun_bytes "$NS_C" "$CLI_TUN")
  # shellcheck disable=SC2086
  MASQD[$label]=$(iperf "masq-${label// /_}" $args)
  after=$(tun_bytes "$NS_C" "$CLI_TUN")
  # The transfer must have crossed the client's TUN, not some other path.
  [ $((after - before)) -gt $((SECS * 1000000)) ] || fail "$label: only $((after - before)) bytes crossed $CLI_TUN"
  pretty "masq    $label: ${MASQD[$label]} Gbit/s"
done

# CPU time (user + system) is where the tunnel's cost shows on 2 cores.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
CPU_SRV=$(cpu_secs "$SERVER_PID") CPU_CLI=$(cpu_secs "$CONNECT_PID")

# The server undoes its NAT on SIGTERM: table gone, forwarding back to 0.
kill "$CONNECT_PID"
wait "$CONNECT_PID" 2>/dev/null || true
kill "$SERVER_PID"
for ((i = 0; i < 200; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$SERVER_PID" 2>/dev/null && fail "the server did not exit within 10 s of SIGTERM"
rc=0
wait "$SERVER_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "the server exited with status $rc on SIGTERM"
SERVER_PID=
n_s nft list tables | grep -q "masq_$SRV_TUN" && fail "the server left its NAT table behind"
[ "$(n_s sysctl -n net.ipv4.ip_forward)" = 0 ] || fail "the server left ip_forward on"

echo "== $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), Linux $(uname -r), iperf3 TCP ${SECS} s to $T4, tunnel MTU $TUN_MTU"
printf '%-22s %14s %14s %8s\n' test "direct Gbit/s" "masq Gbit/s" ratio
for c in "${CASES[@]}"; do
  label=${c%%|*}
  printf '%-22s %14s %14s %8s\n' "$label" "${DIRECT[$label]}" "${MASQD[$label]}" \
    "$(awk -v m="${MASQD[$label]}" -v d="${DIRECT[$label]}" 'BEGIN { printf (d > 0 ? "%.3f" : "-"), m / d }')"
done
echo "masq CPU over the ${#CASES[@]} runs ($((${#CASES[@]} * SECS)) s of transfer): server ${CPU_SRV} s, client ${CPU_CLI} s"
