#!/usr/bin/env bash
# QUIC inside CONNECT-UDP: a second ("inner") masq server runs in the
# target namespace; the inner forwarder reaches it through the outer
# tunnel, so a whole QUIC connection (handshake with 1200-byte Initials,
# HTTP/3, and its own tunnel datagrams) rides in the outer tunnel's
# datagrams. RFC 9298 §5 asks proxies to carry such packets.
TEST_NAME=quic_in_tunnel
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
topo_up

INNER_TOKEN=inner-token-$ID
"$MASQ" gencert --cert "$TMP/inner-cert.pem" --key "$TMP/inner-key.pem" --name 127.0.0.1 \
  >/dev/null 2>&1 || fail "gencert for the inner server failed"

start_echo "$NS_T" 7
start_server
# The inner server's target is its own address, which its default policy
# denies: allow exactly that address.
bg inner-server n_t "$MASQ" server --listen "[::]:4443" --cert "$TMP/inner-cert.pem" \
  --key "$TMP/inner-key.pem" --token "$INNER_TOKEN" --allow "$T4/32" -v
INNER_PID=$LAST_PID
wait_log "$TMP/inner-server.log" "listening on"

start_forward outer --udp "127.0.0.1:4443:$T4:4443"
wait_log "$TMP/outer.log" "forwarding udp 127.0.0.1:4443"

bg inner n_c "$MASQ" forward --proxy "https://127.0.0.1:4443" --ca "$TMP/inner-cert.pem" \
  --token "$INNER_TOKEN" -v --udp "127.0.0.1:6000:$T4:7"
INNER_FWD_PID=$LAST_PID
wait_log "$TMP/inner.log" "connected to https://127.0.0.1:4443" 15
pretty "inner QUIC connection established through the outer tunnel"
grep -qE "new connection from \[::ffff:$SI4\]:[0-9]+|new connection from $SI4:[0-9]+" \
  "$TMP/inner-server.log" || fail "the inner server did not see its client come from $SI4"
wait_udp "$NS_C" 6000

out=$(udp_client "$NS_C" 127.0.0.1 6000 1000 20 5 2>&1) || fail "echo through the nested tunnel: $out"
[ "$(tail -n 1 <<<"$out")" = "received 20/20" ] || fail "echo through the nested tunnel: $out"
out=$(udp_client "$NS_C" 127.0.0.1 6000 1 5 5 2>&1) || fail "1-byte echo through the nested tunnel: $out"
pretty "20 x 1000-byte and 5 x 1-byte payloads echoed through QUIC in QUIC"

grep -qE "tunnel on stream [0-9]+ to $T4:7 \($T4\)" "$TMP/inner-server.log" ||
  fail "the inner server opened no tunnel to $T4:7"
grep -qE "tunnel on stream [0-9]+ to $T4:4443 \($T4\)" "$TMP/server.log" ||
  fail "the outer server opened no tunnel to $T4:4443"

# The outer forwarder may drop inner packets that exceed its tunnel (PMTU
# probes do), but the inner forwarder must not black-hole payloads it
# accepted: each one up to the limit it advertises either comes back or
# is reported as dropped. (Its limit must follow what the path carries,
# not the 1452-byte packets it is configured to send.)
inner_limit=$(udp_client "$NS_C" 127.0.0.1 6000 1452 1 1 --expect-none >/dev/null 2>&1;
  for ((i = 0; i < 40; i++)); do
    l=$(sed -nE 's/.*dropped a 1452-byte datagram: the tunnel carries at most ([0-9]+).*/\1/p' \
      "$TMP/inner.log" | tail -n 1)
    [ -n "$l" ] && { echo "$l"; break; }
    sleep 0.05
  done)
[ -n "$inner_limit" ] || fail "the inner forwarder did not log a drop for a 1452-byte payload"
pretty "the inner forwarder says its tunnel carries at most $inner_limit bytes"
for size in 1300 1350 1380 1390 1400 "$inner_limit"; do
  ((size <= inner_limit)) || continue
  out=$(udp_client "$NS_C" 127.0.0.1 6000 "$size" 1 2 2>/dev/null) || true
  [ "$(tail -n 1 <<<"$out")" = "received 1/1" ] && continue
  grep -qE "dropped a $size-byte datagram" "$TMP/inner.log" ||
    fail "a $size-byte payload through the nested tunnel vanished: the inner forwarder \
accepted it (limit $inner_limit) and logged no drop; the outer forwarder logged: \
$(grep -E 'dropped a' "$TMP/outer.log" | tail -n 1)"
done
pretty "no payload up to $inner_limit bytes vanished silently"

alive "$INNER_FWD_PID" "the inner forwarder"
alive "$INNER_PID" "the inner server"
alive "$SERVER_PID" "the outer server"
finish
