#!/usr/bin/env bash
# masq forward --tcp beside --udp in one process: each accepted TCP
# connection becomes a plain CONNECT stream on the same QUIC connection
# as the UDP tunnels. An HTTP download (name target) and an echo over
# IPv6 arrive intact with half-close working both ways; a refused
# target resets the local connection; after a proxy restart new TCP
# connections work again.
TEST_NAME=forward_tcp
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
topo_up

server_hosts "$T4 target.masq.test"
mkdir -p "$TMP/www"
head -c 50000000 /dev/urandom >"$TMP/www/f"
SUM=$(sha256sum <"$TMP/www/f" | cut -d' ' -f1)
start_http_target
start_tcp_targets
start_echo "$NS_T" 7
start_server
start_forward fwd --tcp "2000:target.masq.test:8000" --tcp "[::1]:2001:[$T6]:7000" \
  --tcp "2002:$T4:7002" --udp "5007:$T4:7"
wait_log "$TMP/fwd.log" "forwarding tcp 127.0.0.1:2002 -> $T4:7002"
wait_tcp "$NS_C" 2000

sum=$(n_c curl -sS --max-time 30 http://127.0.0.1:2000/f | sha256sum | cut -d' ' -f1)
[ "$sum" = "$SUM" ] || fail "50 MB through --tcp 2000:target.masq.test:8000 arrived damaged"
pretty "50 MB HTTP download through forward --tcp intact"

# Echo over IPv6 with half-close: the client's FIN reaches the target,
# whose FIN comes back after the echo.
out=$(n_c "$PY" - <<'PY'
import os, socket
s = socket.create_connection(("::1", 2001), timeout=10)
data = os.urandom(3 << 20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(1 << 16)
    if not d:
        break
    got += d
print("ok" if got == data else "mismatch %d of %d" % (len(got), len(data)))
PY
) || fail "echo through --tcp [::1]:2001: $out"
[ "$out" = ok ] || fail "echo through --tcp [::1]:2001: $out"
pretty "3 MB echoed over IPv6 through forward --tcp, FIN both ways"

out=$(n_c "$PY" - <<'PY'
import socket
# The reset can win the race with connect() itself returning.
try:
    s = socket.create_connection(("127.0.0.1", 2002), timeout=10)
    print("eof" if not s.recv(1) else "data")
except ConnectionResetError:
    print("reset")
PY
) || fail "refused target: $out"
[ "$out" = reset ] || fail "a refused target should reset the local connection, got $out"
wait_log "$TMP/fwd.log" "proxy refused the tunnel to $T4:7002: status 502, Proxy-Status: masq; error=connection_refused"
pretty "a refused target resets the local connection"

out=$(udp_client "$NS_C" 127.0.0.1 5007 100 3 3 2>&1) || fail "UDP beside TCP: $out"
n=$(grep -c "new connection from" "$TMP/server.log" || true)
((n == 1)) || fail "forward used $n QUIC connections, want 1"
pretty "UDP echo on the same connection: $out"

# The proxy restarts: open TCP flows are lost with it, but forward
# reconnects and new TCP connections work again.
stop_server
wait_log "$TMP/fwd.log" "lost: .*reconnecting in" 15
mv "$TMP/server.log" "$TMP/server-first.log"
start_server
for ((i = 0; i < 200; i++)); do
  (($(grep -c "connected to" "$TMP/fwd.log") >= 2)) && break
  sleep 0.1
done
(($(grep -c "connected to" "$TMP/fwd.log") >= 2)) || fail "forward did not reconnect"
sum=$(n_c curl -sS --max-time 30 http://127.0.0.1:2000/f | sha256sum | cut -d' ' -f1)
[ "$sum" = "$SUM" ] || fail "50 MB through --tcp after the reconnection arrived damaged"
pretty "after the proxy restarted: reconnected, 50 MB through --tcp intact"
finish
