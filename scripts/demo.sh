#!/usr/bin/env bash
# Try masq end to end, in throwaway network namespaces:
#
#   sudo scripts/demo.sh                # installs what is missing, builds ./build/masq
#   sudo MASQ=/path/to/masq scripts/demo.sh   # uses that binary as it is
#
# It creates three namespaces (client, proxy, target;
# see tests/netns/lib.sh) joined by veth links with documentation-range
# addresses, where the only way from client to target is through masq;
# starts a masq server, a UDP echo service, a dnsmasq DNS server and a
# web server; then a masq forward (CONNECT-UDP) and a masq connect VPN
# (CONNECT-IP) in the client; sends real traffic; prints what happened;
# and removes everything again. Nothing leaves the namespaces.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (packages, network namespaces): sudo $0" >&2
  exit 1
fi
if [ -z "${MASQ:-}" ]; then
  "$ROOT/scripts/setup.sh"
  echo "demo: building masq in $ROOT/build"
  cmake -S "$ROOT" -B "$ROOT/build" >/dev/null
  cmake --build "$ROOT/build" -j "$(nproc)" >/dev/null
  MASQ=$ROOT/build/masq
fi
if [ ! -x "$MASQ" ]; then
  echo "demo: no masq binary at $MASQ" >&2
  exit 1
fi
MASQ=$(realpath "$MASQ")
TEST_NAME=demo
# shellcheck source=tests/netns/lib.sh
. "$ROOT/tests/netns/lib.sh"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
# poll_log FILE REGEX: bounded wait (10 s) for a line, without failing.
poll_log() {
  local i
  for ((i = 0; i < 200; i++)); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
row() { printf '  %-22s %s\n' "$1" "$2"; }
ok=1

topo_up
bold "masq demo ($("$MASQ" --version 2>/dev/null || echo "$MASQ"))"
echo
bold "Topology (network namespaces, removed on exit)"
row "client  $NS_C" "$C4, $C6"
row "proxy   $NS_S" "$S4 (to client), $SI4 (to target); IPv6 $S6, $SI6"
row "target  $NS_T" "$T4, $T6"
row "routing" "none: client and target can reach each other only through masq"

# Services on the target.
start_echo "$NS_T" 7
have_dns=0
if command -v dnsmasq >/dev/null && command -v dig >/dev/null; then
  bg dnsmasq n_t dnsmasq --no-daemon --conf-file=/dev/null --pid-file= --no-resolv --no-hosts \
    --address=/example.masq.test/192.0.2.77 --listen-address="$T4" --bind-interfaces \
    --port=53 --user=nobody --group=nogroup --log-facility=- --log-queries
  wait_udp "$NS_T" 53
  have_dns=1
fi

start_server --nat
start_forward fwd --udp "127.0.0.1:5000:$T4:7" --udp "127.0.0.1:5353:$T4:53"
wait_udp "$NS_C" 5353
echo
bold "masq"
row "server" "masq server --listen [::]:443 --token ... (in $NS_S)"
row "forward" "masq forward --proxy https://$S4:443 (in $NS_C)"
row "" "udp 127.0.0.1:5000 -> $T4:7  (echo)"
row "" "udp 127.0.0.1:5353 -> $T4:53 (DNS)"
row "QUIC connection" "$(sed -nE 's/.*new connection from (.*)/\1/p' "$TMP/server.log" | head -n 1) -> $S4:443"

echo
bold "UDP echo through the tunnel (10 datagrams of each size, random bytes)"
printf '  %-8s %-10s %-28s %s\n' size echoed "rtt min/avg/max (ms)" "bytes out/in"
total_out=0 total_in=0
for size in 1 100 512 1200 1400; do
  out=$(udp_client "$NS_C" 127.0.0.1 5000 "$size" 10 3 --rtt 2>/dev/null) || ok=0
  got=$(tail -n 1 <<<"$out" | sed 's/received //')
  rtt=$(sed -nE 's/^rtt min\/avg\/max ([^ ]+) ms.*/\1/p' <<<"$out")
  bytes=$(sed -nE 's/.*bytes out ([0-9]+) in ([0-9]+)/\1 \2/p' <<<"$out")
  set -- ${bytes:-0 0}
  total_out=$((total_out + $1)) total_in=$((total_in + $2))
  printf '  %-8s %-10s %-28s %s\n' "$size" "$got" "${rtt:--}" "$1/$2"
  [ "$got" = "10/10" ] || ok=0
done

echo
bold "Largest UDP payload the tunnel carries"
udp_client "$NS_C" 127.0.0.1 5000 1452 1 1 --expect-none >/dev/null 2>&1 || true
limit=
for ((i = 0; i < 40; i++)); do
  limit=$(sed -nE 's/.*dropped a 1452-byte datagram: the tunnel carries at most ([0-9]+).*/\1/p' \
    "$TMP/fwd.log" | tail -n 1)
  [ -n "$limit" ] && break
  sleep 0.05
done
if [ -n "$limit" ]; then
  row "forwarder says" "$limit bytes (a 1452-byte datagram was dropped and logged)"
  out=$(udp_client "$NS_C" 127.0.0.1 5000 "$limit" 3 3 2>/dev/null) || true
  row "$limit-byte echo" "$(tail -n 1 <<<"$out")"
  [ "$(tail -n 1 <<<"$out")" = "received 3/3" ] || ok=0
  out=$(udp_client "$NS_C" 127.0.0.1 5000 $((limit + 1)) 1 1 --expect-none 2>/dev/null) || ok=0
  row "$((limit + 1))-byte datagram" "dropped by the forwarder, as it should be"
else
  row "forwarder says" "nothing (no drop logged for a 1452-byte datagram)"
  ok=0
fi

echo
bold "DNS through the tunnel"
if [ "$have_dns" = 1 ]; then
  out=$(n_c dig +tries=1 +time=3 @127.0.0.1 -p 5353 example.masq.test A 2>&1) || true
  ans=$(awk '/^example\.masq\.test\./ && $4 == "A" {print $5}' <<<"$out")
  qt=$(sed -nE 's/^;; Query time: (.*)/\1/p' <<<"$out")
  row "query" "dig @127.0.0.1 -p 5353 example.masq.test (in $NS_C)"
  row "answer" "${ans:-none} (query time ${qt:-?})"
  row "dnsmasq saw it from" "$(sed -nE 's/.*query\[A\] example\.masq\.test from (.*)/\1/p' \
    "$TMP/dnsmasq.log" | head -n 1) (the proxy's address)"
  [ "$ans" = 192.0.2.77 ] || ok=0
else
  row "skipped" "install dnsmasq and dnsutils (dig) to see it"
fi

echo
bold "Tunnels (one CONNECT-UDP request per local source address)"
sed -nE 's/.*tunnel for (.*) to (.*) open \(stream ([0-9]+)\).*/  stream \3: \1 -> \2/p' \
  "$TMP/fwd.log" | head -n 8
n=$(grep -c "open (stream" "$TMP/fwd.log" || true)
((n > 8)) && echo "  ... $n in all"

echo
bold "VPN through the same proxy (masq connect, CONNECT-IP)"
mkdir -p "$TMP/www" && echo "hello from the target" >"$TMP/www/index.html"
bg web n_t "$PY" -m http.server --bind "$T4" --directory "$TMP/www" 8080
bg vpn n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN"
VPN_PID=$LAST_PID
for ((i = 0; i < 200; i++)); do n_t ss -Hltn "sport = :8080" | grep -q . && break; sleep 0.05; done
if poll_log "$TMP/vpn.log" "masq connect: up"; then
  echo "  $(grep -m1 '^masq connect: up' "$TMP/vpn.log")"
  if command -v ping >/dev/null; then
    out=$(n_c ping -c 3 -i 0.2 -W 2 "$T4" 2>&1) || ok=0
    row "ping $T4" "$(tail -n 1 <<<"$out" | sed 's/^rtt //')"
  fi
  page=$(n_c curl -sS --max-time 5 "http://$T4:8080/" 2>&1) || ok=0
  row "curl (web on target)" "http://$T4:8080/ says \"$page\""
  [ "$page" = "hello from the target" ] || ok=0
  kill "$VPN_PID"
  wait "$VPN_PID" 2>/dev/null || ok=0
  left=$(n_c ip rule | grep -c 28017 || true)
  row "after SIGTERM" "$left masq routing rules left, device $(n_c ip link show masq0 >/dev/null 2>&1 && echo kept || echo removed)"
  [ "$left" = 0 ] || ok=0
else
  row "client says" "$(tail -n 1 "$TMP/vpn.log")"
  ok=0
fi

# Stop the server first so that it prints its totals.
kill "$SERVER_PID" 2>/dev/null || true
for ((i = 0; i < 100; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
echo
bold "Proxy totals"
row "payload bytes" "$total_out sent by the echo client, $total_in echoed back"
sed -nE 's/.*datagrams tx ([0-9]+) rx ([0-9]+).*/\1 \2/p' "$TMP/server.log" | head -n 1 |
  { read -r tx rx && row "QUIC datagrams" "$rx from the client, $tx to the client"; } || true
sed -nE 's/.*stopped: (.*)/\1/p' "$TMP/server.log" | fold -s -w 70 | sed 's/^/  /'

echo
if [ "$ok" = 1 ]; then
  bold "demo: everything worked"
  exit 0
fi
bold "demo: something did not work; the logs:"
dump_logs
exit 1
