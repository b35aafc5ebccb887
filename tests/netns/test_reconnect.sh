#!/usr/bin/env bash
# The forward outlives its proxy: when the server goes away and comes
# back, the client reconnects on its own and the same local port works
# again. A proxy that cannot be reached at start is a clear error instead.
TEST_NAME=reconnect
. "$(dirname "$0")/lib.sh"
topo_up
start_echo "$NS_T" 7

# Nothing listens yet: the first connection fails and masq forward exits
# non-zero with the reason (bounded by QUIC's handshake timeout).
rc=0
n_c timeout 30 "$MASQ" forward --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" \
  --udp 127.0.0.1:5000:$T4:7 >"$TMP/nostart.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "forward without a server: exit status $rc, expected an error"
grep -q "cannot connect to https://$S4:443" "$TMP/nostart.log" || fail "no reason given: $(cat "$TMP/nostart.log")"
pretty "no server at start: exits $rc with \"$(grep -o 'cannot connect.*' "$TMP/nostart.log")\""

start_server
start_forward fwd --udp 127.0.0.1:5000:$T4:7
out=$(udp_client "$NS_C" 127.0.0.1 5000 500 3 3) || fail "no echo before the restart: $out"
pretty "echo before the server restart: $out"

kill "$SERVER_PID"
wait "$SERVER_PID" || true
wait_log "$TMP/fwd.log" "lost: .*reconnecting in" 15
pretty "forward noticed the lost connection and waits to reconnect"

mv "$TMP/server.log" "$TMP/server-1.log"
start_server
# A second "connected to" line: bounded by the backoff (1 s, then 2 s...).
for ((i = 0; i < 400; i++)); do
  [ "$(grep -c "connected to" "$TMP/fwd.log")" -ge 2 ] && break
  sleep 0.05
done
[ "$(grep -c "connected to" "$TMP/fwd.log")" -ge 2 ] || fail "forward did not reconnect within 20 s"
out=$(udp_client "$NS_C" 127.0.0.1 5000 500 3 5) || fail "no echo after the restart: $out"
pretty "reconnected by itself; echo after the restart: $out"
finish
