#!/usr/bin/env bash
# A silent tunnel is closed by the server after --idle-timeout (RFC 9298
# §3: the stream closes with the socket); the client notices, and the next
# datagram from the same source opens a new tunnel that works.
TEST_NAME=idle_timeout
. "$(dirname "$0")/lib.sh"
topo_up
start_echo "$NS_T" 7
start_server --idle-timeout 2
start_forward fwd --udp 127.0.0.1:5000:$T4:7

# One fixed source port, so both exchanges belong to the same local flow.
send_once() {
  n_c python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 40000))
s.settimeout(1)
msg = sys.argv[1].encode()
for _ in range(5):
    s.sendto(msg, ("127.0.0.1", 5000))
    try:
        if s.recv(2048) == msg:
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
PY
}

send_once first || fail "no echo through the first tunnel"
wait_log "$TMP/server.log" "tunnel on stream 0 "
pretty "first tunnel (stream 0) carried an echo"
# Nothing is sent now: the server must end the tunnel on its own.
wait_log "$TMP/server.log" "stream 0 ended: idle timeout" 10
pretty "server closed the silent tunnel after its idle timeout"
send_once second || fail "no echo after the idle close"
wait_log "$TMP/server.log" "tunnel on stream 4 "
pretty "the next datagram opened a new tunnel (stream 4) and was echoed"
kill -0 "$SERVER_PID" || fail "server died"
# The QUIC connection idles out no sooner than a tunnel (2 s here), and
# the client's keep-alive PINGs at half of that: only the tunnel closed.
if grep -q "lost:" "$TMP/fwd.log"; then fail "the QUIC connection was lost to the idle timeout"; fi
pretty "the QUIC connection itself stayed up (keep-alive)"
