#!/usr/bin/env bash
# Scale: 200 concurrent tunnels (200 source ports) over one QUIC
# connection, each echoing its own unique payloads; then two forwarders
# (two QUIC connections) at once against the same server.
TEST_NAME=many_tunnels
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
topo_up

# udp_many.py's echo server has a 4 MiB receive buffer: 200 datagrams
# arriving at once would overflow a default-sized one, which is not what
# this test is about.
bg echo n_t "$PY" "$NETNS_DIR/udp_many.py" --echo 7
wait_udp "$NS_T" 7
start_server
start_forward fwd --udp "127.0.0.1:5000:$T4:7"
wait_udp "$NS_C" 5000

# many NAME PORT SOCKETS: SOCKETS flows x 5 unique 200-byte datagrams.
many() {
  n_c "$PY" "$NETNS_DIR/udp_many.py" 127.0.0.1 "$2" "$3" 5 200 30 >"$TMP/$1.out" 2>&1
}

many many200 5000 200 || fail "200 tunnels: $(cat "$TMP/many200.out")"
pretty "$(cat "$TMP/many200.out")"
n=$(grep -cE "tunnel on stream [0-9]+ to $T4:7 " "$TMP/server.log" || true)
((n == 200)) || fail "the server opened $n tunnels for 200 source ports, want 200"
n=$(grep -c "new connection from" "$TMP/server.log" || true)
((n == 1)) || fail "200 tunnels used $n QUIC connections, want 1"
streams=$(sed -nE 's/.*tunnel for 127\.0\.0\.1:[0-9]+ to .* open \(stream ([0-9]+)\).*/\1/p' \
  "$TMP/fwd.log" | sort -un | wc -l)
((streams == 200)) || fail "the forwarder opened $streams distinct streams, want 200"
pretty "200 tunnels on 200 distinct streams of one QUIC connection"

# Two more forwarders, i.e. two more QUIC connections, used at once.
start_forward fwd-a --udp "127.0.0.1:5100:$T4:7"
start_forward fwd-b --udp "127.0.0.1:5200:[$T6]:7"
wait_udp "$NS_C" 5100
wait_udp "$NS_C" 5200
# Both at once; bg tracks them, so a failure cannot leave one running.
bg many-a n_c "$PY" "$NETNS_DIR/udp_many.py" 127.0.0.1 5100 50 5 200 30
pa=$LAST_PID
bg many-b n_c "$PY" "$NETNS_DIR/udp_many.py" 127.0.0.1 5200 50 5 200 30
pb=$LAST_PID
wait "$pa" || fail "forwarder A: $(cat "$TMP/many-a.log")"
wait "$pb" || fail "forwarder B: $(cat "$TMP/many-b.log")"
pretty "forwarder A: $(cat "$TMP/many-a.log")"
pretty "forwarder B: $(cat "$TMP/many-b.log")"
n=$(grep -c "new connection from" "$TMP/server.log" || true)
((n == 3)) || fail "expected 3 QUIC connections on the server, saw $n"

# The first forwarder's 200 tunnels still work after all that.
many again 5000 20 || fail "the first forwarder after the others: $(cat "$TMP/again.out")"

alive "$SERVER_PID" "the server"
finish
