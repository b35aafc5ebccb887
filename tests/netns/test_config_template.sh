#!/usr/bin/env bash
# The server reads its settings from a config file; a non-default URI
# template (RFC 9298 §2's query form) works when both ends use it and a
# client with the default template is refused with 404; the client
# reaches the server over IPv6.
TEST_NAME=config_template
. "$(dirname "$0")/lib.sh"
topo_up
start_echo "$NS_T" 7
TMPL='https://{proxy}/masque{?target_host,target_port}'

cat >"$TMP/server.ini" <<INI
[Server]
Listen = [::]:443
Cert = $TMP/cert.pem
Key = $TMP/key.pem
Token = $TOKEN
UDPTemplate = $TMPL
IdleTimeout = 300
Retry = yes
INI
chmod 600 "$TMP/server.ini"
bg server n_s "$MASQ" server --config "$TMP/server.ini" -v
SERVER_PID=$LAST_PID
wait_log "$TMP/server.log" "listening on \[::\]:443"
pretty "server started from its config file (Retry = yes: every client proves its address)"

# Same template, proxy addressed by its IPv6 literal.
bg fwd6 n_c "$MASQ" forward --proxy "https://[$S6]:443" --ca "$TMP/cert.pem" --token "$TOKEN" \
  --udp-template "$TMPL" --udp 127.0.0.1:5000:$T4:7 -v
wait_log "$TMP/fwd6.log" "connected to"
out=$(udp_client "$NS_C" 127.0.0.1 5000 1000 5 3) || fail "no echo with the query template: $out"
wait_log "$TMP/server.log" "request on stream 0: CONNECT connect-udp /masque\?target_host=192.0.2.2&target_port=7"
pretty "query-form template over an IPv6 outer path, after a QUIC Retry: $out"

# The default template does not match this server's: 404, no tunnel.
bg fwddef n_c "$MASQ" forward --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" \
  --udp 127.0.0.1:5001:$T4:7 -v
wait_log "$TMP/fwddef.log" "connected to"
udp_client "$NS_C" 127.0.0.1 5001 100 1 2 --expect-none >/dev/null ||
  fail "an echo came back through a request that does not match the template"
wait_log "$TMP/fwddef.log" "refused the tunnel to 192.0.2.2:7: status 404"
pretty "a client with the default template is refused with 404"
# Both clients went through a Retry (RFC 9000 §8.1.2) before getting state.
grep -q "sent a Retry to \[$C6\]" "$TMP/server.log" || fail "no Retry for the IPv6 client"
grep -q "sent a Retry to \[::ffff:$C4\]" "$TMP/server.log" || fail "no Retry for the IPv4 client"
pretty "both clients were validated with a Retry"
finish
