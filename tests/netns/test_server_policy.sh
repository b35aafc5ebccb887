#!/usr/bin/env bash
# The server's gatekeeping, seen from the command line: bearer tokens
# (407), the target policy (403 destination_ip_prohibited, also for a name
# that resolves into a denied range), name errors (502 dns_error), and
# that none of it stops the server from serving good requests. Also the
# server's refusal to start as an open proxy by accident.
TEST_NAME=server_policy
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"
topo_up

# The server resolves names from this file only, so nonexistent.invalid
# fails fast and deterministically (no DNS server is involved).
server_hosts "10.1.2.3 private.masq.test
$T4 echo.masq.test"

start_echo "$NS_T" 7
start_server

# expect_refusal LOG PORT HOST TPORT STATUS ERROR: a datagram to the
# forwarder's PORT gets no answer, and the forwarder logs the refusal of
# HOST:TPORT (an IPv6 HOST with or without brackets) with that status and
# Proxy-Status error.
expect_refusal() {
  local log=$1 port=$2 host=$3 tport=$4 status=$5 error=$6 out re
  out=$(udp_client "$NS_C" 127.0.0.1 "$port" 100 1 1 --expect-none) ||
    fail "$host:$tport: an answer came back through a tunnel that should be refused: $out"
  re="proxy refused the tunnel to \\[?${host//./\\.}\\]?:$tport: status $status, "
  re+="Proxy-Status: masq; error=$error;"
  wait_log "$TMP/$log.log" "$re" 5
  pretty "$host:$tport refused: $(grep -m1 -E "$re" "$TMP/$log.log" | sed 's/.*status/status/')"
}

# (a) Bearer tokens: a wrong one and none at all are both refused (407).
bg bad-token n_c "$MASQ" forward --proxy "https://$S4:443" --ca "$TMP/cert.pem" \
  --token "wrong-$TOKEN" --udp "127.0.0.1:5010:$T4:7"
wait_log "$TMP/bad-token.log" "connected to"
expect_refusal bad-token 5010 "$T4" 7 407 http_request_denied
bg no-token n_c "$MASQ" forward --proxy "https://$S4:443" --ca "$TMP/cert.pem" \
  --udp "127.0.0.1:5011:$T4:7"
wait_log "$TMP/no-token.log" "connected to"
expect_refusal no-token 5011 "$T4" 7 407 http_request_denied
n=$(grep -cE "refused a request on stream [0-9]+: 407 http_request_denied" "$TMP/server.log" || true)
((n == 2)) || fail "the server logged $n 407 refusals, want 2"
grep -q "tunnel on stream" "$TMP/server.log" && fail "the server opened a tunnel without a valid token"

# (b) Denied targets (403): the server's own addresses, private, loopback,
# and a name that resolves to a private address (policy applies to the
# resolved address, not the name).
# (c) A name that does not resolve (502 dns_error).
start_forward fwd \
  --udp "127.0.0.1:5020:$SI4:7" \
  --udp "127.0.0.1:5021:10.0.0.1:7" \
  --udp "127.0.0.1:5022:127.0.0.1:7" \
  --udp "127.0.0.1:5023:[$SI6]:7" \
  --udp "127.0.0.1:5024:private.masq.test:7" \
  --udp "127.0.0.1:5025:nonexistent.invalid:7" \
  --udp "127.0.0.1:5030:$T4:7"
wait_udp "$NS_C" 5030
expect_refusal fwd 5020 "$SI4" 7 403 destination_ip_prohibited
expect_refusal fwd 5021 "10.0.0.1" 7 403 destination_ip_prohibited
expect_refusal fwd 5022 "127.0.0.1" 7 403 destination_ip_prohibited
expect_refusal fwd 5023 "$SI6" 7 403 destination_ip_prohibited
expect_refusal fwd 5024 "private.masq.test" 7 403 destination_ip_prohibited
expect_refusal fwd 5025 "nonexistent.invalid" 7 502 dns_error
grep -qE "tunnel on stream [0-9]+ to .*\(($SI4|10\.0\.0\.1|127\.0\.0\.1|$SI6|private\.masq\.test|nonexistent\.invalid)\)" \
  "$TMP/server.log" && fail "the server opened a tunnel to a denied target: $(grep -m1 'tunnel on stream' "$TMP/server.log")"

# (d) After all of that, the same server and the same QUIC connection
# still serve a good request.
alive "$SERVER_PID" "the server"
out=$(udp_client "$NS_C" 127.0.0.1 5030 300 5 3 2>&1) || fail "good tunnel after the refusals: $out"
pretty "a good tunnel on the same connection still echoes: $out"
n=$(grep -c "new connection from" "$TMP/server.log" || true)
((n == 3)) || fail "expected 3 QUIC connections (bad token, no token, fwd), saw $n"

# (e) No tokens and no --no-auth: the server will not start, and says why
# in one line. With --no-auth it starts, warns, and serves without tokens.
set +e
err=$(n_s timeout 10 "$MASQ" server --listen "[::]:8443" --cert "$TMP/cert.pem" --key "$TMP/key.pem" 2>&1)
rc=$?
set -e
((rc != 0 && rc != 124)) || fail "masq server without --token or --no-auth: exit status $rc, want an error"
[ "$(wc -l <<<"$err")" -eq 1 ] && [ -n "$err" ] || fail "want a one-line reason, got: $err"
grep -q -- "--no-auth" <<<"$err" && grep -q -- "--token" <<<"$err" ||
  fail "the reason should name --token and --no-auth: $err"
pretty "without a token the server refuses to start (status $rc): $err"

bg open-server n_s "$MASQ" server --listen "[::]:8443" --cert "$TMP/cert.pem" \
  --key "$TMP/key.pem" --no-auth -v
OPEN_PID=$LAST_PID
wait_log "$TMP/open-server.log" "listening on"
grep -qE "warning: .*--no-auth" "$TMP/open-server.log" || fail "--no-auth gave no warning"
bg open-fwd n_c "$MASQ" forward --proxy "https://$S4:8443" --ca "$TMP/cert.pem" \
  --udp "127.0.0.1:5040:$T4:7"
wait_log "$TMP/open-fwd.log" "connected to"
wait_udp "$NS_C" 5040
out=$(udp_client "$NS_C" 127.0.0.1 5040 100 3 3 2>&1) || fail "--no-auth server without a token: $out"
# Open does not mean unrestricted: the target policy still applies.
bg open-fwd-denied n_c "$MASQ" forward --proxy "https://$S4:8443" --ca "$TMP/cert.pem" \
  --udp "127.0.0.1:5041:$SI4:7"
wait_log "$TMP/open-fwd-denied.log" "connected to"
expect_refusal open-fwd-denied 5041 "$SI4" 7 403 destination_ip_prohibited
pretty "--no-auth: warned, served a client without a token, still applied the policy"

alive "$OPEN_PID" "the --no-auth server"
finish
