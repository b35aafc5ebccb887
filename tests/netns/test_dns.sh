#!/usr/bin/env bash
# Real DNS through the tunnel: dnsmasq in the target namespace answers
# dig in the client namespace, over an IPv4 and an IPv6 tunnel. dnsmasq's
# query log shows the queries arriving from the server's addresses, so
# they crossed masq (nothing routes between client and target).
TEST_NAME=dns
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
for tool in dnsmasq dig; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
topo_up

NAME=example.masq.test ADDR=192.0.2.77
# --conf-file=/dev/null and --pid-file= keep a system dnsmasq.conf and
# pid file out of it; the log goes to stderr, i.e. $TMP/dnsmasq.log.
bg dnsmasq n_t dnsmasq --no-daemon --conf-file=/dev/null --pid-file= --no-resolv --no-hosts \
  --address="/$NAME/$ADDR" --listen-address="$T4" --listen-address="$T6" --bind-interfaces \
  --port=53 --user=nobody --group=nogroup --log-facility=- --log-queries
DNSMASQ_PID=$LAST_PID
wait_udp "$NS_T" 53
start_server
start_forward fwd --udp "127.0.0.1:5353:$T4:53" --udp "127.0.0.1:5354:[$T6]:53"
wait_log "$TMP/fwd.log" "forwarding udp 127.0.0.1:5354"

# query PORT NAME [TYPE]: dig through the forwarder's local port.
query() {
  n_c dig +short +tries=1 +time=3 @127.0.0.1 -p "$1" "$2" "${3:-A}" 2>&1
}

ans=$(query 5353 "$NAME") || fail "dig through the IPv4 tunnel failed: $ans"
[ "$ans" = "$ADDR" ] || fail "dig $NAME through the IPv4 tunnel: got '$ans', want $ADDR"
wait_log "$TMP/dnsmasq.log" "query\[A\] $NAME from $SI4\$" 5
pretty "$NAME -> $ans via 127.0.0.1:5353 -> $T4:53 (dnsmasq saw the query from $SI4)"

ans=$(query 5354 "$NAME") || fail "dig through the IPv6 tunnel failed: $ans"
[ "$ans" = "$ADDR" ] || fail "dig $NAME through the IPv6 tunnel: got '$ans', want $ADDR"
wait_log "$TMP/dnsmasq.log" "query\[A\] $NAME from $SI6\$" 5
pretty "$NAME -> $ans via 127.0.0.1:5354 -> [$T6]:53 (dnsmasq saw the query from $SI6)"

# A name dnsmasq does not know: a real answer (NXDOMAIN / REFUSED), not a
# timeout, i.e. the reply traffic of an error crosses the tunnel too.
out=$(n_c dig +tries=1 +time=3 @127.0.0.1 -p 5353 other.masq.test A 2>&1) || true
grep -qE "status: (NXDOMAIN|REFUSED|SERVFAIL)" <<<"$out" ||
  fail "no DNS error reply for other.masq.test through the tunnel: $out"

# Several queries in a row (each dig is a new source port, so a new tunnel).
for i in 1 2 3 4 5; do
  ans=$(query 5353 "$NAME") || fail "query $i failed: $ans"
  [ "$ans" = "$ADDR" ] || fail "query $i: got '$ans'"
done
pretty "5 more queries answered, each through its own tunnel"

alive "$DNSMASQ_PID" "dnsmasq"
alive "$SERVER_PID" "the server"
finish
