#!/usr/bin/env bash
# masq socks end to end: curl through socks5h:// and socks5:// (names,
# IPv4 and IPv6 targets), 1 GiB down and up intact, 1000 concurrent
# flows over one QUIC connection (queued behind the server's stream
# limit, then all open at once), a target that never reads keeps client
# and server memory flat, refused / silent / denied / unknown / resetting
# targets get the right SOCKS reply quickly, UDP ASSOCIATE carries DNS,
# username/password, and malformed SOCKS input gets its error reply and
# a closed socket while the client keeps serving.
TEST_NAME=socks
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
for tool in curl dnsmasq dig; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done
topo_up
ulimit -n "$(ulimit -Hn)" # a file descriptor per flow, at both ends

server_hosts "$T4 target.masq.test
$T6 target6.masq.test"
blackhole_tcp 7003 # the silent target
make_www # small and $MIB MiB big, SMALL_SUM and BIG_SUM
start_http_target
start_tcp_targets
bg dnsmasq n_t dnsmasq --no-daemon --conf-file=/dev/null --pid-file= --no-resolv --no-hosts \
  --address="/example.masq.test/192.0.2.77" --listen-address="$T4" --bind-interfaces \
  --port=53 --user=nobody --group=nogroup --log-facility=- --log-queries
wait_udp "$NS_T" 53

start_server --connect-timeout 2
bg socks n_c "$MASQ" socks --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" -v
SOCKS_PID=$LAST_PID
wait_log "$TMP/socks.log" "connected to"
wait_tcp "$NS_C" 1080
sc() { n_c "$PY" "$NETNS_DIR/socks_client.py" 1080 "$@"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# (1) curl: names resolved by the proxy (socks5h), IPv4 and IPv6 literals.
for url in "socks5h://127.0.0.1:1080 http://target.masq.test:8000/small" \
  "socks5h://127.0.0.1:1080 http://target6.masq.test:8000/small" \
  "socks5://127.0.0.1:1080 http://$T4:8000/small" \
  "socks5h://127.0.0.1:1080 http://[$T6]:8000/small"; do
  set -- $url
  sum=$(n_c curl -sS --max-time 20 -x "$1" "$2" | sha256sum | cut -d' ' -f1)
  [ "$sum" = "$SMALL_SUM" ] || fail "curl -x $1 $2: wrong content"
done
grep -qE "TCP flow on stream [0-9]+ to target\.masq\.test:8000" "$TMP/server.log" || fail "the server never saw the name target.masq.test (socks5h must not resolve locally)"
pretty "curl through socks5h:// and socks5:// (name, IPv4, IPv6): 100 kB intact"

# (2) 1 GiB down and 1 GiB up.
t0=$(date +%s.%N)
sum=$(n_c curl -sS --max-time 300 -x socks5h://127.0.0.1:1080 http://target.masq.test:8000/big |
  sha256sum | cut -d' ' -f1)
t1=$(date +%s.%N)
[ "$sum" = "$BIG_SUM" ] || fail "the $MIB MiB download arrived damaged"
pretty "$MIB MiB download intact in $(rate "$t0" "$t1")"
t0=$(date +%s.%N)
got=$(n_c curl -sS --max-time 300 -x socks5h://127.0.0.1:1080 -T "$TMP/www/big" \
  http://target.masq.test:8000/upload)
t1=$(date +%s.%N)
[ "$got" = "$BIG_SUM" ] || fail "the $MIB MiB upload arrived damaged (target saw $got)"
pretty "$MIB MiB upload intact in $(rate "$t0" "$t1")"

# (3) 1000 concurrent flows. The server allows 256 streams at once: the
# client queues the rest and submits them as streams end.
out=$(sc many 1000 "$T4" 7000) || fail "1000 flows behind the stream limit: $out"
pretty "1000 concurrent SOCKS flows, 256 streams at a time: $out"

# (4) Reply codes, quickly. Refused, silent (server --connect-timeout 2),
# denied by policy, unknown name, and a target that resets after
# accepting.
expect_reply() {
  local want=$1 host=$2 port=$3 t0 t1 got
  t0=$(date +%s%N)
  got=$(sc reply "$host" "$port") || fail "SOCKS CONNECT to $host:$port failed: $got"
  t1=$(date +%s%N)
  [ "$got" = "$want" ] || fail "CONNECT $host:$port: got '$got', want '$want'"
  (((t1 - t0) / 1000000 < 6000)) || fail "CONNECT $host:$port took $(((t1 - t0) / 1000000)) ms"
  pretty "CONNECT $host:$port -> $got in $(((t1 - t0) / 1000000)) ms"
}
expect_reply 05 "$T4" 7002
expect_reply 06 "$T4" 7003
expect_reply 02 10.0.0.1 80
expect_reply 02 127.0.0.1 22
expect_reply 04 nonexistent.invalid 80
expect_reply "00 reset" "$T4" 7001
expect_reply "00 data" "$T4" 7000

# (5) A target that never reads: the upload stalls, and neither the
# client nor the server buffers it.
out=$(sc stall "$T4" 7004 200 "$SOCKS_PID" "$SERVER_PID") || fail "stalled upload: $out"
pretty "stalled upload: $(tr '\n' ' ' <<<"$out")"
while read -r _ pid before after; do
  (((after - before) < 65536)) || fail "RSS of $pid grew from $before kB to $after kB"
done < <(grep '^rss ' <<<"$out")

# (6) UDP ASSOCIATE: dig through a tiny relay that speaks SOCKS5 UDP.
bg relay n_c "$PY" "$NETNS_DIR/socks_client.py" 1080 udp-relay 5399 "$T4" 53
wait_log "$TMP/relay.log" "^ready"
ans=$(n_c dig +short +tries=2 +time=3 @127.0.0.1 -p 5399 example.masq.test A 2>&1) ||
  fail "dig through UDP ASSOCIATE: $ans"
[ "$ans" = "192.0.2.77" ] || fail "dig through UDP ASSOCIATE: got '$ans'"
wait_log "$TMP/dnsmasq.log" "query\[A\] example.masq.test from $SI4\$" 5
pretty "UDP ASSOCIATE: dig example.masq.test -> $ans (dnsmasq saw the query from $SI4)"

# (7) Malformed input: the protocol's error reply, then a closed socket.
expect_raw() {
  local want=$1 what=$2 got
  shift 2
  got=$(sc raw "$@") || fail "$what: $got"
  [ "$got" = "$want" ] || fail "$what: got '$got', want '$want'"
  pretty "$what -> $got"
}
expect_raw "- closed" "a SOCKS4 request" 04010050c000020200
expect_raw "05ff closed" "no methods" 0500
expect_raw "05ff closed" "only GSSAPI offered" 050101
expect_raw "050005070001000000000000 closed" "unknown command" 050100 05090001c00002020050
expect_raw "050005080001000000000000 closed" "unknown address type" 050100 0501000901020304
expect_raw "050005010001000000000000 closed" "reserved byte set" 050100 05010101c00002020050
expect_raw "050005070001000000000000 closed" "BIND" 050100 05020001c00002020050
expect_raw "050005010001000000000000 closed" "a name with a NUL" 050100 05010003036100620050
alive "$SOCKS_PID" "masq socks"
sum=$(n_c curl -sS --max-time 20 -x socks5h://127.0.0.1:1080 http://target.masq.test:8000/small |
  sha256sum | cut -d' ' -f1)
[ "$sum" = "$SMALL_SUM" ] || fail "masq socks stopped serving after the malformed input"
pretty "still serving after the malformed input"

# (8) Username/password (RFC 1929) and all 1000 flows open at once on a
# server that allows that many streams.
bg server2 n_s "$MASQ" server --listen "[::]:8443" --cert "$TMP/cert.pem" --key "$TMP/key.pem" \
  --token "$TOKEN" --max-tunnels 1100 -v
wait_log "$TMP/server2.log" "listening on"
bg socks2 n_c "$MASQ" socks --listen 127.0.0.1:1081 --proxy "https://$S4:8443" \
  --ca "$TMP/cert.pem" --token "$TOKEN" --user alice --password 's3cret'
wait_log "$TMP/socks2.log" "connected to"
wait_tcp "$NS_C" 1081
sc2() { n_c "$PY" "$NETNS_DIR/socks_client.py" 1081 "$@"; }
got=$(sc2 raw 050100) || true
[ "$got" = "05ff closed" ] || fail "no-auth offered where a password is required: got '$got'"
got=$(sc2 raw 050102 0105616c696365057772306e67) || true
[ "$got" = "05020101 closed" ] || fail "a wrong password: got '$got'"
sum=$(n_c curl -sS --max-time 20 -x socks5h://alice:s3cret@127.0.0.1:1081 \
  http://target.masq.test:8000/small | sha256sum | cut -d' ' -f1)
[ "$sum" = "$SMALL_SUM" ] || fail "curl with the right username and password"
pretty "RFC 1929: no-auth and a wrong password refused, the right one served"
out=$(SOCKS_USER=alice SOCKS_PASS=s3cret sc2 many 1000 "$T4" 7000 --hold) ||
  fail "1000 flows open at once: $out"
pretty "1000 SOCKS flows open at once over one connection: $out"
n=$(grep -c "new connection from" "$TMP/server2.log" || true)
((n == 1)) || fail "the second client used $n QUIC connections, want 1"

alive "$SOCKS_PID" "masq socks"
finish
