#!/usr/bin/env bash
# masq http-proxy end to end: curl through CONNECT (--proxytunnel) and
# absolute-form requests to a name, an IPv4 and an IPv6 origin; 1 GiB
# down through a CONNECT tunnel and 1 GiB up as a forwarded PUT, intact;
# refused / silent / denied / unknown targets answered 502 or 504 with
# the Proxy-Status error; malformed requests answered 4xx and closed
# while the proxy keeps serving.
TEST_NAME=http_proxy
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
topo_up

server_hosts "$T4 target.masq.test"
blackhole_tcp 7003 # the silent target
make_www # small and $MIB MiB big, SMALL_SUM and BIG_SUM
start_http_target

start_server --connect-timeout 2
bg hp n_c "$MASQ" http-proxy --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" -v
HP_PID=$LAST_PID
wait_log "$TMP/hp.log" "connected to"
wait_tcp "$NS_C" 8080
PX=http://127.0.0.1:8080

# (1) Both kinds of request, to a name, an IPv4 and an IPv6 origin.
for url in http://target.masq.test:8000/small "http://$T4:8000/small" "http://[$T6]:8000/small"; do
  for mode in "" --proxytunnel; do
    sum=$(n_c curl -sS --max-time 20 $mode -x $PX "$url" | sha256sum | cut -d' ' -f1)
    [ "$sum" = "$SMALL_SUM" ] || fail "curl $mode -x $PX $url: wrong content"
  done
done
grep -q '"GET /small HTTP/1.1" 200' "$TMP/http.log" || fail "the origin saw no origin-form GET"
pretty "CONNECT tunnels and absolute-form GETs (name, IPv4, IPv6): 100 kB intact"

# (2) 1 GiB down through a CONNECT tunnel, 1 GiB up as a forwarded PUT.
t0=$(date +%s.%N)
sum=$(n_c curl -sS --max-time 300 --proxytunnel -x $PX http://target.masq.test:8000/big |
  sha256sum | cut -d' ' -f1)
t1=$(date +%s.%N)
[ "$sum" = "$BIG_SUM" ] || fail "the $MIB MiB download arrived damaged"
pretty "$MIB MiB download through CONNECT intact in $(rate "$t0" "$t1")"
t0=$(date +%s.%N)
got=$(n_c curl -sS --max-time 300 -x $PX -T "$TMP/www/big" http://target.masq.test:8000/upload)
t1=$(date +%s.%N)
[ "$got" = "$BIG_SUM" ] || fail "the $MIB MiB PUT arrived damaged (origin saw $got)"
pretty "$MIB MiB absolute-form PUT intact in $(rate "$t0" "$t1")"
t0=$(date +%s.%N)
sum=$(n_c curl -sS --max-time 300 -x $PX http://target.masq.test:8000/big |
  sha256sum | cut -d' ' -f1)
t1=$(date +%s.%N)
[ "$sum" = "$BIG_SUM" ] || fail "the $MIB MiB absolute-form download arrived damaged"
pretty "$MIB MiB absolute-form GET intact in $(rate "$t0" "$t1")"

# (3) Refusals: 502/504 with the Proxy-Status error, quickly.
raw() { n_c "$PY" "$NETNS_DIR/http_raw.py" 8080 "$1"; }
expect() {
  local what=$1 req=$2 re=$3 got t0 t1
  t0=$(date +%s%N)
  got=$(raw "$req") || fail "$what: $got"
  t1=$(date +%s%N)
  grep -qE "$re" <<<"$got" || fail "$what: got '$got', want /$re/"
  pretty "$what -> $got ($(((t1 - t0) / 1000000)) ms)"
}
expect "CONNECT to a closed port" 'CONNECT 192.0.2.2:7002 HTTP/1.1\r\nHost: 192.0.2.2:7002\r\n\r\n' \
  '^HTTP/1.1 502 .*error=connection_refused.* closed$'
expect "CONNECT to a silent port" 'CONNECT 192.0.2.2:7003 HTTP/1.1\r\nHost: 192.0.2.2:7003\r\n\r\n' \
  '^HTTP/1.1 504 .*error=connection_timeout.* closed$'
expect "GET from a denied address" 'GET http://10.0.0.1/ HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n' \
  '^HTTP/1.1 502 .*error=destination_ip_prohibited.* closed$'
expect "GET from an unknown name" 'GET http://nonexistent.invalid/ HTTP/1.1\r\nHost: nonexistent.invalid\r\n\r\n' \
  '^HTTP/1.1 502 .*error=dns_error.* closed$'

# (4) Malformed requests: the parser's status, then a closed connection.
expect "garbage" 'HELLO\r\n\r\n' '^HTTP/1.1 400 .*error=http_request_error.* closed$'
expect "origin-form to a proxy" 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' '^HTTP/1.1 400 .* closed$'
expect "https:// in absolute form" 'GET https://x/ HTTP/1.1\r\nHost: x\r\n\r\n' '^HTTP/1.1 400 .* closed$'
expect "HTTP/2.0" 'GET http://x/ HTTP/2.0\r\nHost: x\r\n\r\n' '^HTTP/1.1 505 .* closed$'
expect "a bare CR" 'GET http://x/ HTTP/1.1\r\nHost: x\rY\r\n\r\n' '^HTTP/1.1 400 .* closed$'
expect "CONNECT with a body" 'CONNECT x:80 HTTP/1.1\r\nHost: x:80\r\nContent-Length: 5\r\n\r\n' \
  '^HTTP/1.1 400 .* closed$'
big=$(head -c 20000 /dev/zero | tr '\0' a)
expect "a 20 kB header" "GET http://x/ HTTP/1.1\\r\\nHost: x\\r\\nX: $big\\r\\n\\r\\n" '^HTTP/1.1 431 .* closed$'
alive "$HP_PID" "masq http-proxy"
sum=$(n_c curl -sS --max-time 20 -x $PX http://target.masq.test:8000/small | sha256sum | cut -d' ' -f1)
[ "$sum" = "$SMALL_SUM" ] || fail "masq http-proxy stopped serving after the malformed input"
pretty "still serving after the malformed requests"
finish
