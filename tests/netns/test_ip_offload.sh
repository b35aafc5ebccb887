#!/bin/bash
# The CONNECT-IP datapath with TUN offloads (docs/datapath.md), with the
# real kernel on both ends:
#  - 20 MB each way over IPv4 and IPv6 TCP arrives intact (sha256): the
#    TSO super-packets read from both TUNs are cut into packets, and the
#    segments written into them are coalesced;
#  - TCP segments larger than the tunnel -- the client's route through
#    masq0 says MTU 1500 and asks for 1460-octet segments -- arrive as
#    super-packets at both ends; each draws a Packet Too Big for its
#    segment size (not the super-packet's length), the kernels learn the
#    tunnel MTU, and the transfers go on;
#  - both ends report offloads in their exit totals, with segments
#    coalesced.
TEST_NAME=ip_offload
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

topo_up
start_server --nat
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"
start_connect
[ -n "$MTU" ] && [ "$MTU" -lt 1500 ] || fail "tunnel MTU '$MTU' should be below 1500"
pretty "client up: mtu $MTU"

# Routes through the tunnel that claim more than it carries: the kernel
# sends 1500-octet packets into masq0 and advertises MSS 1460 (1440 for
# IPv6) to the target. The policy rules send the client's traffic to
# masq's table (--fwmark default 28017); a more specific route wins there.
n_c ip route add 192.0.2.0/24 dev masq0 mtu 1500 advmss 1460 table 28017
n_c ip -6 route add 2001:db8:2::/64 dev masq0 mtu 1500 advmss 1440 table 28017

head -c 20000000 /dev/urandom >"$TMP/blob"
want=$(sha256sum <"$TMP/blob" | cut -d' ' -f1)

# Target side: an HTTP server for downloads and a sink that hashes what
# it receives (one connection per port).
mkdir -p "$TMP/www" && ln -s "$TMP/blob" "$TMP/www/blob"
bg http n_t "$PY" -m http.server --bind :: --directory "$TMP/www" 8080
cat >"$TMP/sink.py" <<'EOF'
import hashlib, socket, sys
s = socket.create_server(("::", int(sys.argv[1])), family=socket.AF_INET6, dualstack_ipv6=True)
for out in sys.argv[2:]:
    c, _ = s.accept()
    h = hashlib.sha256()
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
    open(out, "w").write(h.hexdigest())
    c.close()
EOF
bg sink n_t "$PY" "$TMP/sink.py" 9000 "$TMP/up4" "$TMP/up6"
for p in 8080 9000; do wait_tcp "$NS_T" $p; done

upload() { # HOST: send the blob to the sink
  n_c timeout 120 "$PY" -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 9000))
s.sendall(open(sys.argv[2], "rb").read())
s.shutdown(socket.SHUT_WR)
s.recv(1)' "$1" "$TMP/blob" || fail "upload to $1 failed"
}
wait_file() { # FILE
  for ((i = 0; i < 200; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done
  fail "the sink wrote no $1"
}

upload "$T4"
wait_file "$TMP/up4"
[ "$(cat "$TMP/up4")" = "$want" ] || fail "20 MB up over IPv4 arrived corrupted or short"
upload "$T6"
wait_file "$TMP/up6"
[ "$(cat "$TMP/up6")" = "$want" ] || fail "20 MB up over IPv6 arrived corrupted or short"
got=$(n_c curl -sS --max-time 120 "http://$T4:8080/blob" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "20 MB down over IPv4 arrived corrupted or short"
got=$(n_c curl -sS --max-time 120 "http://[$T6]:8080/blob" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "20 MB down over IPv6 arrived corrupted or short"
pretty "20 MB up and down over IPv4 and IPv6 intact"

# Path MTU discovery worked from the segment sizes: both kernels hold
# the tunnel MTU for the other end now.
n_c ip route get "$T4" | grep -q "mtu $MTU" || fail "the client did not learn mtu $MTU: $(n_c ip route get "$T4")"
n_c ip -6 route get "$T6" | grep -q "mtu $MTU" || fail "the client did not learn mtu $MTU for IPv6: $(n_c ip -6 route get "$T6")"
n_t ip route get "$SI4" | grep -q "mtu $MTU" || fail "the target did not learn mtu $MTU: $(n_t ip route get "$SI4")"
pretty "oversized segments drew Packet Too Big with mtu $MTU at both ends"

kill "$CLIENT_PID"
wait_log_fixed "$TMP/client.log" "masq connect: down" 10
stop_server
# Exit totals: offloads on, segments coalesced, oversized segments
# counted as too big (once per segment of a refused super-packet).
grep -qE "TUN with offloads: [0-9]+ reads, [0-9]+ writes for [0-9]+ packets \([1-9][0-9]* coalesced\)" "$TMP/client.log" ||
  fail "no coalescing in the client's totals"
grep -qE "TUN [^ ]+ with offloads: .*\([1-9][0-9]* coalesced\)" "$TMP/server.log" ||
  fail "no coalescing in the server's totals"
grep -qE "too big [1-9]" "$TMP/client.log" || fail "the client refused no segment as too big"
grep -qE "stopped: connect-ip: .* [1-9][0-9]* too big" "$TMP/server.log" ||
  fail "the server refused no segment as too big"
pretty "offloads on at both ends, segments coalesced, oversized ones refused"
finish
