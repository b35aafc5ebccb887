#!/usr/bin/env bash
# Where an idle round trip through a CONNECT-IP tunnel spends its time.
#
#   sudo bench/rtt_hops.sh BUILD_DIR [SECONDS]
#
# In the test topology (tests/netns/lib.sh): udpprobe pings an echo on the
# target every 10 ms, first routed directly through the server namespace,
# then through `masq connect` / `masq server --nat`. During the tunnelled
# pings tcpdump timestamps every packet on the client's TUN and veth, the
# server's TUN and the target's veth (one clock: all namespaces
# share the kernel), and rtt_hops.py matches each ping's packets to print
# the median time of every hop: which part is masq's (TUN <-> UDP at each
# end) and which is the kernel's or the echo's.
set -eu
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [SECONDS]}" && pwd)
SECS=${2:-5}
MASQ=$BUILD/masq PROBE=$BUILD/udpprobe
[ -x "$PROBE" ] || { echo "rtt_hops: $PROBE is missing: build the bench tools" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "rtt_hops: needs tcpdump (apt-get install tcpdump)" >&2; exit 1; }
# shellcheck source=../tests/netns/lib.sh
. "$(dirname "$0")/../tests/netns/lib.sh"
# shellcheck disable=SC2034 # read by lib.sh
TEST_NAME=rtt-hops
topo_up
SRV_TUN=masqs0 CLI_TUN=masq0 PORT=7000
trap 'set +e; stop_all; cleanup' EXIT

bg probe-serve n_t "$PROBE" serve "$PORT"
wait_udp "$NS_T" "$PORT"
pings() { # SECS of pings every 10 ms; prints udpprobe's summary line
  n_c "$PROBE" ping "$T4" "$PORT" --interval 10 --seconds "$SECS"
}

# ---- direct: the server namespace routes ----
n_s sysctl -qw net.ipv4.ip_forward=1
n_c ip route add 192.0.2.0/24 via "$S4"
n_t ip route add 198.51.100.0/24 via "$SI4"
echo "direct:  $(pings)"
n_c ip route del 192.0.2.0/24 via "$S4"
n_t ip route del 198.51.100.0/24 via "$SI4"
n_s sysctl -qw net.ipv4.ip_forward=0

# ---- through masq, with a capture on every hop ----
start_server --nat --tun "$SRV_TUN" --allow 192.0.2.0/24
start_connect --tun "$CLI_TUN"
n_c ip route get "$T4" | grep -q "dev $CLI_TUN" || fail "the target is not routed through $CLI_TUN"
CAPS=("$NS_C $CLI_TUN" "$NS_C vc-$ID" "$NS_S $SRV_TUN" "$NS_T vt-$ID")
for c in "${CAPS[@]}"; do
  ns=${c% *} dev=${c#* }
  bg "cap-$dev" ip netns exec "$ns" tcpdump -i "$dev" -n -tt --time-stamp-precision=nano \
    -l -U udp
  wait_log "$TMP/cap-$dev.log" "listening on" 10
done
echo "masq:    $(pings)"
stop_all
"$PY" "$(dirname "$0")/rtt_hops.py" "$T4.$PORT" "$S4.443" "$TMP/cap-$CLI_TUN.log" "$TMP/cap-vc-$ID.log" \
  "$TMP/cap-$SRV_TUN.log" "$TMP/cap-vt-$ID.log"
echo "== $(nproc) cores, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
