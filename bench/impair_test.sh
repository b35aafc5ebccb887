#!/usr/bin/env bash
# Correctness check of bench/impair, the link emulator bench/compare.sh
# relies on: three namespaces a — link — b, the link routing through
# impair's TUN as compare.sh does, udpprobe between a and b. Checks that
# measured delay, loss, rate, jitter, reordering and the delay swing match
# what was configured. Upper bounds leave room for scheduling delays on a
# busy machine; lower bounds are exact (the relay never releases early).
#
#   sudo bench/impair_test.sh BUILD_DIR        (about 25 s; exit 0 = pass)
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd) || exit 2
IMPAIR=$BUILD/impair PROBE=$BUILD/udpprobe
[ -x "$IMPAIR" ] && [ -x "$PROBE" ] || { echo "impair_test: build impair and udpprobe first" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "impair_test: needs root" >&2; exit 2; }
ID=$$ NA=imt-a-$$ NL=imt-l-$$ NB=imt-b-$$ IMP=imt-$$
TMP=$(mktemp -d /tmp/impair-test.XXXXXX) || exit 1
PIDS=() FAILS=0

stop() { # PID
  kill "$1" 2>/dev/null
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop "$p"; done
  for ns in "$NA" "$NL" "$NB"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "impair_test: $*" >&2; exit 1; }
check() { # DESCRIPTION AWK-CONDITION (with variables v, lo, hi) VALUE LO HI
  if awk -v v="$3" -v lo="$4" -v hi="$5" "BEGIN { exit !($2) }"; then
    printf 'ok    %-44s %s (want %s..%s)\n' "$1" "$3" "$4" "$5"
  else
    printf 'FAIL  %-44s %s (want %s..%s)\n' "$1" "$3" "$4" "$5"; FAILS=$((FAILS + 1))
  fi
}
in_range() { check "$1" "v >= lo && v <= hi" "$2" "$3" "$4"; }

for ns in "$NA" "$NL" "$NB"; do ip netns add "$ns" && ip -n "$ns" link set lo up || die "netns"; done
ip link add "a-$ID" netns "$NA" type veth peer name "la-$ID" netns "$NL" &&
ip link add "lb-$ID" netns "$NL" type veth peer name "b-$ID" netns "$NB" &&
ip -n "$NA" addr add 198.51.100.2/24 dev "a-$ID" && ip -n "$NL" addr add 198.51.100.1/24 dev "la-$ID" &&
ip -n "$NL" addr add 203.0.113.1/24 dev "lb-$ID" && ip -n "$NB" addr add 203.0.113.2/24 dev "b-$ID" &&
ip -n "$NA" link set "a-$ID" up && ip -n "$NL" link set "la-$ID" up &&
ip -n "$NL" link set "lb-$ID" up && ip -n "$NB" link set "b-$ID" up &&
ip -n "$NA" route add 203.0.113.0/24 via 198.51.100.1 &&
ip -n "$NB" route add 198.51.100.0/24 via 203.0.113.1 &&
ip netns exec "$NL" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
  net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0 &&
ip -n "$NL" rule add pref 100 iif "$IMP" lookup main &&
ip -n "$NL" rule add pref 110 lookup 100 || die "cannot build the topology"

ip netns exec "$NB" "$PROBE" serve 7000 >"$TMP/serve.log" 2>&1 &
PIDS+=($!)

IMP_PID=
impair() { # ARGS...: (re)start the relay
  [ -n "$IMP_PID" ] && stop "$IMP_PID"
  ip netns exec "$NL" "$IMPAIR" --tun "$IMP" --side-a 198.51.100.0/24 "$@" >"$TMP/impair.log" 2>&1 &
  IMP_PID=$!
  PIDS+=("$IMP_PID")
  local i
  for ((i = 0; i < 100; i++)); do grep -q "ready on" "$TMP/impair.log" 2>/dev/null && break; sleep 0.05; done
  grep -q "ready on" "$TMP/impair.log" || die "impair did not start: $(cat "$TMP/impair.log")"
  ip -n "$NL" link set "$IMP" mtu 1500 up && ip -n "$NL" route replace default dev "$IMP" table 100 ||
    die "cannot route through $IMP"
}
counters() { # print impair's counters now
  kill -USR1 "$IMP_PID"; sleep 0.2; grep '^impair: towards' "$TMP/impair.log" | tail -n 2
}
ping_field() { # OUTPUT FIELD(p50|p99|min|max|loss)
  awk -v f="$2" '/^ping sent/ { for (i = 1; i < NF; i++) if ($i == f) { v = $(i + 1); sub(/%/, "", v); print v } }' <<<"$1"
}
ping_ab() { ip netns exec "$NA" "$PROBE" ping 203.0.113.2 7000 "$@"; }

# 1. No impairment: the relay adds well under a millisecond.
impair
out=$(ping_ab --interval 5 --seconds 1)
in_range "clean: RTT median (ms)" "$(ping_field "$out" p50)" 0 1
in_range "clean: loss (%)" "$(ping_field "$out" loss)" 0 0

# 2. Delay 20 ms each way: RTT 40 ms.
impair --delay 20
out=$(ping_ab --interval 5 --seconds 2)
in_range "delay 20: RTT min (ms)" "$(ping_field "$out" min)" 40 41
in_range "delay 20: RTT median (ms)" "$(ping_field "$out" p50)" 40 44

# 3. Loss 10% each way: a round trip survives with 0.9^2 = 81%.
impair --loss 10 --seed 7
out=$(ping_ab --interval 1 --seconds 3)
in_range "loss 10%: round-trip loss (%)" "$(ping_field "$out" loss)" 15 23
c=$(counters)
in_range "loss 10%: relay's own count (%)" \
  "$(awk '{ in_ += $5; lost += $7 } END { printf "%.2f", 100 * lost / in_ }' <<<"$c")" 8.5 11.5

# 4. Rate 20 Mbit/s: 40 offered, about 20 arrive (1200-byte payloads in
#    1228-byte packets: 19.5 Mbit/s of payload).
impair --rate 20 --buffer-ms 50
out=$(ip netns exec "$NA" "$PROBE" load 203.0.113.2 7000 --mbit 40 --seconds 2)
in_range "rate 20 Mbit/s: goodput (Mbit/s)" "$(awk '/^result/ { print $5 }' <<<"$out")" 18 20.5
# With the queue full, the queueing delay is the buffer: 50 ms.
ip netns exec "$NA" "$PROBE" load 203.0.113.2 7000 --mbit 40 --seconds 2 >/dev/null &
load=$!
out=$(ping_ab --interval 10 --seconds 1 --after 0.5)
wait "$load"
in_range "rate 20 Mbit/s: RTT with a full buffer (ms)" "$(ping_field "$out" p50)" 45 56

# 5. Jitter 20 ms on 10 ms: RTT 20..60 for sparse probes, and no
#    reordering (a packet never leaves before the one ahead of it, so
#    dense traffic sees delays skewed towards the top).
impair --delay 10 --jitter 20
out=$(ping_ab --interval 25 --seconds 2)
in_range "jitter: RTT min (ms)" "$(ping_field "$out" min)" 20 30
in_range "jitter: RTT max (ms)" "$(ping_field "$out" max)" 45 75
in_range "jitter: RTT median (ms)" "$(ping_field "$out" p50)" 32 48
ip netns exec "$NA" "$PROBE" load 203.0.113.2 7000 --mbit 20 --seconds 1 >/dev/null
c=$(counters)
in_range "jitter: packets reordered" "$(awk '{ s += $13 } END { print s }' <<<"$c")" 0 0

# 6. Reordering 10%: counted, and those packets arrive late.
impair --reorder 10 --reorder-gap 5 --seed 3
out=$(ping_ab --interval 2 --seconds 2)
c=$(counters)
in_range "reorder 10%: share held back (%)" \
  "$(awk '{ in_ += $5; r += $13 } END { printf "%.2f", 100 * r / in_ }' <<<"$c")" 7 13
in_range "reorder 10%: RTT median (ms)" "$(ping_field "$out" p50)" 0 2
in_range "reorder 10%: RTT max (ms)" "$(ping_field "$out" max)" 5 100

# 7. The mobile swing: 10..40 ms each way over 1 s, RTT 20..80.
impair --delay 10 --delay-max 40 --period 1
out=$(ping_ab --interval 5 --seconds 2)
in_range "swing: RTT min (ms)" "$(ping_field "$out" min)" 20 24
in_range "swing: RTT max (ms)" "$(ping_field "$out" max)" 74 95
in_range "swing: RTT median (ms)" "$(ping_field "$out" p50)" 40 60

[ "$FAILS" -eq 0 ] && echo "impair_test: PASS" || { echo "impair_test: $FAILS check(s) failed"; exit 1; }
