#!/bin/bash
# masq as a VPN: `masq server --nat` and `masq connect` (CONNECT-IP, RFC
# 9484) with the real kernel on both ends.
#  - ping, UDP and TCP through the tunnel to the target namespace over
#    IPv4 and IPv6, the server masquerading; a 100 MB download arrives
#    intact (sha256);
#  - a packet too big for the tunnel, sent with DF from the target, gets
#    ICMP Fragmentation Needed / Packet Too Big carrying the tunnel MTU;
#  - a second client (its own namespace) gets other addresses and cannot
#    reach the first one, until the server allows client-to-client;
#  - the server's NAT (nftables table, forwarding sysctls) is gone after
#    SIGTERM, and after SIGKILL once the server has started again.
TEST_NAME=ip_vpn
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

topo_up
NS_C2=masq-c2-$ID C2_4=203.0.113.2 S2_4=203.0.113.1
ip netns add "$NS_C2"
trap 'ip netns del "$NS_C2" 2>/dev/null; cleanup' EXIT
ip -n "$NS_C2" link set lo up
ip link add vc2-$ID netns "$NS_C2" type veth peer name vs3-$ID netns "$NS_S"
ip -n "$NS_C2" addr add $C2_4/24 dev vc2-$ID
n_s ip addr add $S2_4/24 dev vs3-$ID
ip -n "$NS_C2" link set vc2-$ID up
n_s ip link set vs3-$ID up
# The second client reaches the proxy by the certificate's name.
ns_etc "$NS_C2" hosts "$S2_4 masq.test"

forwarding() { n_s cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding | tr -d '\n'; }
nat_tables() { n_s nft list tables | grep -c masq || true; }

[ "$(forwarding)" = "00" ] || fail "the server namespace should start without forwarding"
start_server --nat
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"
[ "$(forwarding)" = "11" ] || fail "--nat did not turn forwarding on ($(forwarding))"
[ "$(nat_tables)" = 1 ] || fail "--nat did not add its nftables table"

start_connect
A4=$(n_c ip -4 -o addr show dev masq0 | awk '{print $4}' | cut -d/ -f1)
A6=$(n_c ip -6 -o addr show dev masq0 scope global | awk '{print $4}' | cut -d/ -f1)
[ -n "$MTU" ] && [ -n "$A4" ] && [ -n "$A6" ] || fail "no MTU or addresses on masq0"
pretty "client up: mtu $MTU, $A4, $A6"
[ "$MTU" -ge 1280 ] || fail "tunnel MTU $MTU is below IPv6's 1280"

# RFC 9484 §11: the outer packets are Not-ECT and carry no DSCP, whatever
# the inner ones say. The server namespace counts arriving QUIC packets,
# and those with any DSCP or ECN bits, while the client pings with TOS
# 0xb9 (DSCP EF, ECT(1)) inside.
n_s nft -f - <<'NFT'
table inet tos_check {
  chain in {
    type filter hook input priority 0;
    udp dport 443 counter
    udp dport 443 ip dscp != cs0 counter
    udp dport 443 ip ecn != not-ect counter
  }
}
NFT
counters() { n_s nft list chain inet tos_check in | sed -nE 's/.*counter packets ([0-9]+).*/\1/p' | tr '\n' ' '; }

# ping both ways of both families (the server masquerades: the target
# sees the server's address).
n_c ping -c 2 -W 3 -Q 0xb9 $T4 >"$TMP/ping4.log" || fail "IPv4 ping through the tunnel failed"
n_c ping -6 -c 2 -W 3 -Q 0xb9 $T6 >"$TMP/ping6.log" || fail "IPv6 ping through the tunnel failed"
read -r quic dscp ecn <<<"$(counters)"
[ "${quic:-0}" -gt 0 ] || fail "the TOS check counted no QUIC packets (rule broken?)"
[ "$dscp" = 0 ] && [ "$ecn" = 0 ] ||
  fail "outer packets with DSCP ($dscp) or ECN ($ecn) bits out of $quic"
n_s nft delete table inet tos_check
pretty "inner TOS 0xb9: $quic outer packets, none with DSCP or ECN bits"
# Full-size packets cross too: MTU-sized pings with DF.
n_c ping -c 1 -W 3 -M do -s $((MTU - 28)) $T4 >>"$TMP/ping4.log" ||
  fail "an MTU-sized IPv4 ping ($MTU bytes) did not cross"
n_c ping -6 -c 1 -W 3 -M do -s $((MTU - 48)) $T6 >>"$TMP/ping6.log" ||
  fail "an MTU-sized IPv6 ping ($MTU bytes) did not cross"

start_echo "$NS_T" 7
udp_client "$NS_C" $T4 7 1200 20 3 >"$TMP/udp4.log" || fail "UDP over IPv4 through the tunnel"
udp_client "$NS_C" $T6 7 1200 20 3 >"$TMP/udp6.log" || fail "UDP over IPv6 through the tunnel"

mkdir -p "$TMP/www"
head -c 100M /dev/urandom >"$TMP/www/big"
head -c 100k /dev/urandom >"$TMP/www/small"
bg http n_t "$PY" -m http.server --bind :: --directory "$TMP/www" 8080
wait_tcp "$NS_T" 8080
want=$(sha256sum <"$TMP/www/big" | cut -d' ' -f1)
got=$(n_c curl -sS --max-time 300 "http://$T4:8080/big" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "100 MB over IPv4 TCP arrived corrupted or short"
want6=$(sha256sum <"$TMP/www/small" | cut -d' ' -f1)
got6=$(n_c curl -sS --max-time 60 "http://[$T6]:8080/small" | sha256sum | cut -d' ' -f1)
[ "$got6" = "$want6" ] || fail "TCP over IPv6 through the tunnel failed"
pretty "ping, UDP and TCP over IPv4 and IPv6; 100 MB intact"

# Path MTU discovery into the tunnel: the target sends more than the
# tunnel carries, with DF, and must hear the tunnel MTU back.
n_t ip route add 10.89.0.0/24 via $SI4
n_t ip -6 route add fd6d:6173:7100::/64 via $SI6
n_t ping -c 2 -W 2 -M do -s 1472 "$A4" >"$TMP/ptb4.log" 2>&1 || true
grep -q "mtu = $MTU" "$TMP/ptb4.log" || fail "no Fragmentation Needed with mtu $MTU: $(cat "$TMP/ptb4.log")"
n_t ping -6 -c 2 -W 2 -M do -s 1452 "$A6" >"$TMP/ptb6.log" 2>&1 || true
grep -qi "too big: mtu=$MTU" "$TMP/ptb6.log" || fail "no Packet Too Big with mtu $MTU: $(cat "$TMP/ptb6.log")"
pretty "oversized DF packets answered with the tunnel MTU ($MTU) in IPv4 and IPv6"

# A second client: other addresses, and no way to the first.
bg client2 ip netns exec "$NS_C2" "$MASQ" connect --proxy "https://masq.test:443" \
  --ca "$TMP/cert.pem" --token "$TOKEN"
C2_PID=$LAST_PID
wait_log "$TMP/client2.log" "masq connect: up" 15
B4=$(ip netns exec "$NS_C2" ip -4 -o addr show dev masq0 | awk '{print $4}' | cut -d/ -f1)
[ -n "$B4" ] && [ "$B4" != "$A4" ] || fail "the second client got '$B4' (first: $A4)"
ip netns exec "$NS_C2" ping -c 1 -W 2 $T4 >/dev/null || fail "the second client cannot reach the target"
if n_c ping -c 2 -W 2 "$B4" >"$TMP/c2c.log" 2>&1; then fail "client-to-client traffic passed"; fi
pretty "second client got $B4; client-to-client refused"

# SIGTERM: both clients and the server leave; NAT is undone.
kill "$C2_PID" "$CLIENT_PID"
wait "$C2_PID" || fail "second client exited with $? on SIGTERM"
wait "$CLIENT_PID" || fail "client exited with $? on SIGTERM"
stop_server
[ "$(nat_tables)" = 0 ] || fail "the NAT table outlived the server"
[ "$(forwarding)" = "00" ] || fail "forwarding not restored after SIGTERM ($(forwarding))"

# Client-to-client when allowed; then SIGKILL and recovery on restart.
start_server --nat --client-to-client
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"
bg client n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN"
CLIENT_PID=$LAST_PID
bg client2 ip netns exec "$NS_C2" "$MASQ" connect --proxy "https://masq.test:443" \
  --ca "$TMP/cert.pem" --token "$TOKEN"
C2_PID=$LAST_PID
wait_log "$TMP/client.log" "masq connect: up" 15
wait_log "$TMP/client2.log" "masq connect: up" 15
B4=$(ip netns exec "$NS_C2" ip -4 -o addr show dev masq0 | awk '{print $4}' | cut -d/ -f1)
n_c ping -c 2 -W 3 "$B4" >"$TMP/c2c.log" || fail "--client-to-client: no ping from client 1 to $B4"
kill "$C2_PID" "$CLIENT_PID"
wait "$C2_PID"; wait "$CLIENT_PID"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
[ "$(nat_tables)" = 1 ] || fail "expected the NAT table to survive SIGKILL (test premise)"
start_server --nat
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"
[ "$(nat_tables)" = 1 ] || fail "after a restart there should be exactly one NAT table"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
# A restart without --nat still undoes what the killed --nat run left.
start_server
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"
[ "$(nat_tables)" = 0 ] || fail "NAT table left after SIGKILL + restart"
[ "$(forwarding)" = "00" ] || fail "forwarding not restored after SIGKILL + restart ($(forwarding))"
pretty "client-to-client when allowed; NAT undone after SIGTERM and after SIGKILL + restart (with or without --nat)"
finish
