#!/usr/bin/env bash
# UDP through one CONNECT-UDP tunnel per local source: IPv4, IPv6 and DNS
# name targets; payloads of 1 to 1400 bytes come back byte-identical; the
# largest payload the tunnel carries is measured, and one byte more is
# refused (and logged) by the forwarder; concurrent sources get distinct
# tunnels.
TEST_NAME=udp_echo
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
topo_up

# The server resolves echo.masq.test from its own hosts file, and only
# from files, so no lookup leaves the namespace.
server_hosts "$T4 echo.masq.test"

start_echo "$NS_T" 7
start_server
start_forward fwd \
  --udp "127.0.0.1:5000:$T4:7" \
  --udp "127.0.0.1:5001:[$T6]:7" \
  --udp "127.0.0.1:5002:echo.masq.test:7"
wait_log "$TMP/fwd.log" "forwarding udp 127.0.0.1:5002 -> echo.masq.test:7"
wait_udp "$NS_C" 5002

# echo_ok PORT SIZE COUNT: COUNT datagrams of SIZE bytes come back intact.
echo_ok() {
  local out
  out=$(udp_client "$NS_C" 127.0.0.1 "$1" "$2" "$3" 5 2>&1) ||
    fail "port $1, $2-byte payloads: $out"
  [ "$(tail -n 1 <<<"$out")" = "received $3/$3" ] || fail "port $1, $2 bytes: $out"
}

for port in 5000 5001 5002; do
  for size in 1 100 1200 1400; do
    echo_ok "$port" "$size" 3
  done
  pretty "port $port: 1, 100, 1200 and 1400-byte payloads echoed intact"
done

# Each target went where it should: the IPv6 literal over IPv6, the name
# to its address from the server's hosts file.
grep -qE "tunnel on stream [0-9]+ to $T4:7 \($T4\)" "$TMP/server.log" ||
  fail "no IPv4 tunnel to $T4:7 in the server log"
grep -qF "to [$T6]:7 ($T6)" "$TMP/server.log" ||
  fail "no IPv6 tunnel to [$T6]:7 in the server log"
grep -qE "tunnel on stream [0-9]+ to $T4:7 \(echo\.masq\.test\)" "$TMP/server.log" ||
  fail "echo.masq.test was not resolved to $T4 by the server"

# ---- the largest payload carried -----------------------------------------
# probe SIZE: does one datagram of SIZE bytes come back (within 2 s)?
probe() {
  local out
  out=$(udp_client "$NS_C" 127.0.0.1 5000 "$1" 1 2 2>/dev/null) || true
  [ "$(tail -n 1 <<<"$out")" = "received 1/1" ]
}
lo=1400 hi=1461 # lo is known to pass (above); a 1500-byte MTU cannot carry hi
probe "$hi" && fail "a $hi-byte payload crossed a 1500-byte-MTU path inside QUIC"
while ((hi - lo > 1)); do
  mid=$(((lo + hi) / 2))
  if probe "$mid"; then lo=$mid; else hi=$mid; fi
done
max=$lo
((max >= 1200)) || fail "max UDP payload $max is below 1200"
# Re-check the edge so a lost probe cannot fake the result.
probe "$max" || fail "a $max-byte payload was echoed once but not again"
# One byte more must be refused by the forwarder, which says why and what
# the limit is: that limit must be what actually got through.
out=$(udp_client "$NS_C" 127.0.0.1 5000 $((max + 1)) 1 2 --expect-none) ||
  fail "a $((max + 1))-byte payload came back although $((max + 1))-byte probes did not: $out"
drop_re="dropped a $((max + 1))-byte datagram: the tunnel carries at most [0-9]+"
for ((i = 0; i < 100; i++)); do
  grep -qE "$drop_re" "$TMP/fwd.log" && break
  sleep 0.05
done
limit=$(sed -nE "s/.*dropped a [0-9]+-byte datagram: the tunnel carries at most ([0-9]+).*/\1/p" \
  "$TMP/fwd.log" | tail -n 1)
if ! grep -qE "$drop_re" "$TMP/fwd.log"; then
  fail "$((max + 1))-byte payloads are lost without the forwarder logging a drop (it says the \
tunnel carries at most ${limit:-?}, but only $max-byte payloads came back)"
fi
[ "$limit" = "$max" ] ||
  fail "the forwarder says the tunnel carries at most $limit bytes, but only $max came back"
pretty "max UDP payload: $max (a $((max + 1))-byte one is dropped and logged)"
echo "max UDP payload: $max"

# ---- a burst: the server batches datagrams to the target ------------------
# 200 datagrams sent at once, in runs of equal sizes broken by shorter ones
# (what the server sends to the target as GSO runs): all come back, intact
# and in order.
out=$(udp_client "$NS_C" 127.0.0.1 5000 1200 200 5 --burst 2>&1) ||
  fail "burst of 200 datagrams: $out"
[ "$(tail -n 1 <<<"$out")" = "received 200/200 in order" ] || fail "burst: $out"
pretty "a burst of 200 datagrams of mixed sizes echoed intact and in order"

# ---- distinct sources, distinct tunnels, at the same time -----------------
tunnels_before=$(grep -cE "tunnel on stream [0-9]+ to $T4:7 \($T4\)" "$TMP/server.log")
cpids=()
for sport in 20001 20002; do
  bg "conc-$sport" n_c "$PY" "$NETNS_DIR/udp_client.py" 127.0.0.1 5000 500 20 5 --sport=$sport
  cpids+=("$LAST_PID")
done
for i in 0 1; do
  sport=$((20001 + i))
  wait "${cpids[i]}" || fail "source port $sport: $(cat "$TMP/conc-$sport.log")"
  grep -qx "received 20/20" "$TMP/conc-$sport.log" || fail "source port $sport: $(cat "$TMP/conc-$sport.log")"
done
s1=$(sed -nE "s/.*tunnel for 127\.0\.0\.1:20001 to $T4:7 open \(stream ([0-9]+)\).*/\1/p" "$TMP/fwd.log")
s2=$(sed -nE "s/.*tunnel for 127\.0\.0\.1:20002 to $T4:7 open \(stream ([0-9]+)\).*/\1/p" "$TMP/fwd.log")
[ -n "$s1" ] && [ -n "$s2" ] || fail "no tunnel opened for source port 20001 or 20002"
[ "$(wc -l <<<"$s1")" -eq 1 ] && [ "$(wc -l <<<"$s2")" -eq 1 ] ||
  fail "a source port got more than one tunnel: streams '$s1' / '$s2'"
[ "$s1" != "$s2" ] || fail "source ports 20001 and 20002 share stream $s1"
tunnels_after=$(grep -cE "tunnel on stream [0-9]+ to $T4:7 \($T4\)" "$TMP/server.log")
((tunnels_after == tunnels_before + 2)) ||
  fail "expected 2 more tunnels on the server, got $((tunnels_after - tunnels_before))"
pretty "two concurrent sources: streams $s1 and $s2, 20/20 echoes each"

alive "$SERVER_PID" "the server"
stop_server
# The burst above went to the target in GSO runs: fewer sends than
# datagrams (one send each before the batching).
read -r dgrams sends < <(sed -nE 's/.*connect-udp: datagrams to targets ([0-9]+) in ([0-9]+) sends.*/\1 \2/p' "$TMP/server.log")
[ -n "${sends:-}" ] || fail "no connect-udp totals in the server's log"
((sends < dgrams)) || fail "the server sent $dgrams datagrams to targets in $sends sends: no batching"
pretty "the server batched: $dgrams datagrams to targets in $sends sends"
finish
