#!/usr/bin/env bash
# masq connect, the CONNECT-IP client (RFC 9484), against masq server
# --nat: a full tunnel comes up with the proxy's addresses, routes and
# MTU; ICMP echo and a TCP transfer reach the target over IPv4 and IPv6
# through it; --dns rewrites resolv.conf; --route narrows and --exclude
# punches holes in the tunnel's routes. After every way the client can
# end -- SIGTERM, loss of the server, kill -9 followed by a restart -- no
# device, address, route or rule of masq, no resolv.conf change and no
# sysctl change is left in the client's namespace.
TEST_NAME=ip_client
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"

POOL4=10.89.0.0/24 POOL6=fd6d:6173:7100::/64
TABLE=28017 # masq connect's default --fwmark, also its routing table
topo_up
ns_etc "$NS_C" resolv.conf "nameserver 203.0.113.53  # the client's own resolver"

# ---- helpers ---------------------------------------------------------------
# ICMP echo with a raw socket (ping is not installed): ping.py HOST COUNT SIZE
cat >"$TMP/ping.py" <<'PY'
import os, socket, struct, sys, time
host, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v6 = ":" in host
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    req, rep = 128, 129
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    req, rep = 8, 0
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
ident, ok = os.getpid() & 0xffff, 0
for seq in range(count):
    data = os.urandom(size)
    hdr = struct.pack("!BBHHH", req, 0, 0, ident, seq)
    if not v6:  # the kernel fills in the ICMPv6 checksum, not ICMPv4's
        hdr = struct.pack("!BBHHH", req, 0, csum(hdr + data), ident, seq)
    s.sendto(hdr + data, (host, 0))
    end = time.monotonic() + 2
    while time.monotonic() < end:
        s.settimeout(max(end - time.monotonic(), 0.01))
        try:
            pkt = s.recv(65535)
        except (socket.timeout, BlockingIOError):
            break
        if not v6:
            pkt = pkt[(pkt[0] & 15) * 4:]
        t, _, _, i, q = struct.unpack("!BBHHH", pkt[:8])
        if t == rep and i == ident and q == seq and pkt[8:] == data:
            ok += 1
            break
print("received %d/%d" % (ok, count))
sys.exit(0 if ok == count else 1)
PY
# A TCP sink that answers each connection with the SHA-256 of what it read.
cat >"$TMP/tcp_sink.py" <<'PY'
import hashlib, socket, sys, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
def serve(c):
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b)
    c.sendall(h.hexdigest().encode())
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
cat >"$TMP/tcp_send.py" <<'PY'
import hashlib, os, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
c = socket.create_connection((host, port), timeout=10)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(100)
    if not b: break
    got += b
ok = got.decode() == hashlib.sha256(data).hexdigest()
print("sent %d bytes, digest %s" % (size, "matches" if ok else "DIFFERS"))
sys.exit(0 if ok else 1)
PY

ping_ok() { # HOST [COUNT] [SIZE]
  local out
  out=$(n_c "$PY" "$TMP/ping.py" "$1" "${2:-3}" "${3:-56}" 2>&1) || fail "ping $1: $out"
}
ping_fails() {
  n_c "$PY" "$TMP/ping.py" "$1" 1 56 >/dev/null 2>&1 && fail "ping $1 crossed the tunnel"
  return 0
}
tcp_ok() { # HOST SIZE
  local out
  out=$(n_c "$PY" "$TMP/tcp_send.py" "$1" 8080 "$2" 2>&1) || fail "TCP to $1: $out"
}

# Everything masq connect may change in the client's namespace.
snapshot() {
  {
    n_c ip rule; n_c ip -6 rule
    n_c ip route show table all; n_c ip -6 route show table all
    n_c ip link; n_c ip addr
    n_c cat /etc/resolv.conf
    n_c sysctl net.ipv4.conf.all.src_valid_mark
  } 2>&1
}
assert_clean() { # WHEN
  snapshot >"$TMP/after.txt"
  diff -u "$TMP/before.txt" "$TMP/after.txt" >"$TMP/diff.txt" ||
    fail "$1: the client's namespace differs from before: $(cat "$TMP/diff.txt")"
}

N=0
start_client() { # ARGS...: a masq connect that comes up
  N=$((N + 1))
  CLIENT_LOG=$TMP/client$N.log
  bg "client$N" n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" \
    --token "$TOKEN" -v "$@"
  CLIENT_PID=$LAST_PID
  wait_log "$CLIENT_LOG" "^masq connect: up on masq0" 15
}
# wait_exit PID: bounded wait for a process to end; its status goes to
# $rc (not printed: `wait` only works on children of this very shell).
wait_exit() {
  local i
  for ((i = 0; i < 200; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$1" 2>/dev/null && fail "process $1 did not exit within 10s"
  rc=0
  wait "$1" || rc=$?
}

# The veth's link-local address is still in Duplicate Address Detection
# right after topo_up; snapshot once it has settled.
for ((i = 0; i < 100; i++)); do
  [ -z "$(n_c ip -6 addr show tentative)" ] && break
  sleep 0.05
done
[ -z "$(n_c ip -6 addr show tentative)" ] || fail "IPv6 DAD did not finish within 5s"
snapshot >"$TMP/before.txt"
bg sink n_t "$PY" "$TMP/tcp_sink.py" 8080
wait_log_fixed "$TMP/sink.log" listening
start_server --nat --pool4 $POOL4 --pool6 $POOL6
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"

# ---- a full tunnel ----------------------------------------------------------
start_client --dns 192.0.2.53 --dns 2001:db8:2::53
up=$(grep -m1 "^masq connect: up" "$CLIENT_LOG")
pretty "$up"
mtu=$(sed -nE 's/.*mtu ([0-9]+),.*/\1/p' <<<"$up")
((mtu >= 1280 && mtu <= 1500)) || fail "TUN MTU $mtu is outside 1280..1500"
[ "$(n_c cat /sys/class/net/masq0/mtu)" -ge "$mtu" ] || fail "masq0's MTU is below $mtu"
a4=$(n_c ip -4 -o addr show dev masq0 | awk '{print $4}')
a6=$(n_c ip -6 -o addr show dev masq0 scope global | awk '{print $4}')
[[ $a4 == 10.89.0.*/32 ]] || fail "masq0 has IPv4 address '$a4', not one from $POOL4"
[[ $a6 == fd6d:6173:7100:* ]] || fail "masq0 has IPv6 address '$a6', not one from $POOL6"
n_c ip route show table $TABLE | grep -q "^default dev masq0" || fail "no IPv4 default route in table $TABLE"
n_c ip -6 route show table $TABLE | grep -q "^default dev masq0" || fail "no IPv6 default route in table $TABLE"
n_c ip rule | grep -q "not from all fwmark 0x6d71 lookup $TABLE" || fail "no IPv4 fwmark rule: $(n_c ip rule)"
n_c ip -6 rule | grep -q "lookup main suppress_prefixlength 0" || fail "no IPv6 suppress rule"
n_c grep -q "^nameserver 192.0.2.53$" /etc/resolv.conf || fail "--dns did not reach resolv.conf"
n_c grep -q "^nameserver 2001:db8:2::53$" /etc/resolv.conf || fail "--dns (IPv6) missing"
pretty "up: $a4 $a6, default routes in table $TABLE, policy rules, resolv.conf"

for t in $T4 $T6; do
  ping_ok "$t" 3 56
  ping_ok "$t" 2 1200
  tcp_ok "$t" 2000000
  pretty "$t: ICMP echo (56 and 1200 bytes) and a 2 MB TCP transfer through the tunnel"
done
grep -q "masq connect: .*error" "$CLIENT_LOG" && fail "client logged an error"

# A second client on the same device must stop without touching the
# first one's configuration (its crash recovery must not mistake the
# live run's rules for leftovers).
out=$(n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" 2>&1) &&
  fail "a second masq connect on masq0 started"
grep -q "another program uses it" <<<"$out" || fail "second client: unclear error: $out"
n_c ip rule | grep -q "lookup $TABLE" || fail "the second client removed the first one's rules"
ping_ok $T4 1 56
pretty "a second client on masq0 is refused ($(head -n1 <<<"$out")); the first keeps working"

kill -TERM "$CLIENT_PID"
wait_exit "$CLIENT_PID"
[ "$rc" -eq 0 ] || fail "client exited with $rc on SIGTERM (want 0)"
assert_clean "after SIGTERM"
pretty "SIGTERM: exit 0, namespace as before"

# ---- --route narrows, --exclude punches holes ----------------------------------
start_client --route $T4/32 --route 2001:db8:2::/64 --exclude 2001:db8:2::2/128
n_c ip route show table $TABLE | grep -q "^$T4 dev masq0" || fail "no route to $T4 in table $TABLE"
[ "$(n_c ip route show table $TABLE | wc -l)" -eq 1 ] ||
  fail "--route $T4/32 left other IPv4 routes: $(n_c ip route show table $TABLE)"
n_c ip -6 route show table $TABLE | grep -q "^2001:db8:2::2 " &&
  fail "--exclude 2001:db8:2::2 is routed into the tunnel"
n_c ip -6 route show table $TABLE | grep -q "^2001:db8:2::3 dev masq0" ||
  fail "the neighbour of the excluded address is not routed: $(n_c ip -6 route show table $TABLE)"
ping_ok $T4 2 56
ping_fails $T6
pretty "--route $T4/32 + --exclude $T6: $T4 reachable, $T6 not, $(n_c ip -6 route show table $TABLE | wc -l) IPv6 routes"
kill -TERM "$CLIENT_PID"
wait_exit "$CLIENT_PID"
[ "$rc" -eq 0 ] || fail "client exited with $rc on SIGTERM (want 0)"
assert_clean "after the --route run"

# ---- a scoped request (RFC 9484 §4.6) and the client's route filter -------------
# The proxy advertises only the target; a packet forced into the tunnel
# towards anything else is refused by the client itself with an ICMP
# "administratively prohibited", which the sender sees as EHOSTUNREACH.
cat >"$TMP/udp_refused.py" <<'PY'
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"masq0")
s.connect((sys.argv[1], 9))
s.settimeout(3)
for _ in range(3):
    s.send(b"x")
    try:
        s.recv(10)
    except OSError as e:
        if e.errno == errno.EHOSTUNREACH:
            print("refused: EHOSTUNREACH")
            sys.exit(0)
        if not isinstance(e, socket.timeout):
            print("error", e)
            sys.exit(1)
print("no ICMP error came back")
sys.exit(1)
PY
start_client --target $T4 --request-address 10.89.0.77
grep -q "requesting /.well-known/masque/ip/$T4/\*/" "$CLIENT_LOG" ||
  fail "scoped request path wrong: $(grep requesting "$CLIENT_LOG")"
n_c ip -4 -o addr show dev masq0 | grep -q "10.89.0.77/32" ||
  fail "--request-address 10.89.0.77 not honoured: $(n_c ip -4 -o addr show dev masq0)"
[ "$(n_c ip route show table $TABLE | awk '{print $1}')" = "$T4" ] ||
  fail "scoped to $T4 but table $TABLE has: $(n_c ip route show table $TABLE)"
ping_ok $T4 2 56
out=$(n_c "$PY" "$TMP/udp_refused.py" 192.0.2.3 2>&1) || fail "192.0.2.3 outside the scope: $out"
kill -TERM "$CLIENT_PID"
wait_exit "$CLIENT_PID"
[ "$rc" -eq 0 ] || fail "client exited with $rc on SIGTERM (want 0)"
grep -qE "not routed [1-9]" "$CLIENT_LOG" || fail "the refused packets were not counted"
assert_clean "after the scoped run"
pretty "--target $T4: path scoped, 10.89.0.77 as requested, one route, other destinations refused with ICMP"

# ---- an outer path too small for 1280-byte inner packets (RFC 9484 §10.1) -------
n_c ip link set vc-$ID mtu 1300
N=$((N + 1))
CLIENT_LOG=$TMP/client$N.log
bg "client$N" n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN"
CLIENT_PID=$LAST_PID
wait_exit "$CLIENT_PID"
n_c ip link set vc-$ID mtu 1500
[ "$rc" -eq 1 ] || fail "client exited with $rc on a 1300-byte outer MTU (want 1 and an error)"
grep -q "below the 1280 bytes IPv6 needs" "$CLIENT_LOG" ||
  fail "no clear error for the small outer MTU: $(cat "$CLIENT_LOG")"
assert_clean "after the MTU failure"
pretty "outer MTU 1300: refused ($(grep -oE "carries only [0-9]+-byte" "$CLIENT_LOG")), exit 1, namespace as before"

# ---- loss of the server ------------------------------------------------------
start_client --dns 192.0.2.53
kill -TERM "$SERVER_PID"
wait_exit "$SERVER_PID"
[ "$rc" -eq 0 ] || fail "the server exited with $rc on SIGTERM"
SERVER_PID=
wait_exit "$CLIENT_PID"
[ "$rc" -eq 1 ] || fail "client exited with $rc when the server went away (want 1)"
grep -qE "connection to .* lost|ended the IP tunnel|tunnel was closed" "$CLIENT_LOG" ||
  fail "the client did not say why it stopped"
assert_clean "after losing the server"
pretty "server gone: exit 1 ($(grep -m1 -oE "(connection to .* lost|ended the IP tunnel|tunnel was closed).*" "$CLIENT_LOG")), namespace as before"

# ---- kill -9, then a restart cleans up -----------------------------------------
start_server --nat --pool4 $POOL4 --pool6 $POOL6
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"
start_client --dns 192.0.2.53
kill -KILL "$CLIENT_PID"
wait "$CLIENT_PID" 2>/dev/null || true
n_c ip rule | grep -q "lookup $TABLE" || fail "expected the fwmark rule to outlive kill -9"
n_c grep -q "^nameserver 192.0.2.53$" /etc/resolv.conf || fail "expected --dns to outlive kill -9"
start_client
grep -q "undid the rules and resolv.conf changes" "$CLIENT_LOG" ||
  fail "the restarted client did not report undoing the crashed run's changes"
ping_ok $T4 1 56
n_c grep -q "^nameserver 192.0.2.53$" /etc/resolv.conf && fail "resolv.conf still has the old --dns"
kill -TERM "$CLIENT_PID"
wait_exit "$CLIENT_PID"
[ "$rc" -eq 0 ] || fail "client exited with $rc on SIGTERM (want 0)"
assert_clean "after kill -9 and a restart"
pretty "kill -9 left rules and resolv.conf; the next run undid them; namespace as before"

finish
