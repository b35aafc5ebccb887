#!/bin/bash
# Bad and borderline input against the server, one h3probe case at a time
# (tests/tools/h3probe.c): refused requests must get the right status and
# Proxy-Status, malformed capsules and datagrams the right stream or
# connection error, and none of it may take the server down, corrupt it
# (sanitizer reports in its log) or leak (LeakSanitizer at exit).
TEST_NAME=bad_input
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROBE=${MASQ_BUILD:+$MASQ_BUILD/h3probe}
[ -n "$PROBE" ] && [ -x "$PROBE" ] || PROBE=$(dirname "$MASQ")/h3probe
[ -x "$PROBE" ] || { echo "SKIP: h3probe not built (looked in ${MASQ_BUILD:-$(dirname "$MASQ")})"; exit 77; }

topo_up
start_server
start_echo "$NS_T" 7

# probe CASE [ARGS...]: run one case from the client namespace; it must
# exit 0. Its output goes to $TMP/probe.log for dump_logs. Failures are
# collected so one run reports every case that misbehaves.
FAILED=()
probe() {
  local c=$1 out rc=0; shift
  out=$(n_c "$PROBE" --proxy "$S4:443" --ca "$TMP/cert.pem" --sni masq.test --token "$TOKEN" \
    --case "$c" "$@" 2>>"$TMP/probe.log") || rc=$?
  echo "$out" >>"$TMP/probe.log"
  pretty "$out"
  [ "$rc" -eq 0 ] || FAILED+=("--case $c $* (exit $rc): $out")
}

server_alive() {
  kill -0 "$SERVER_PID" 2>/dev/null && [ -n "$(ip netns pids "$NS_S")" ]
}

for c in ok no-token wrong-token auth-header wrong-protocol no-capsule-protocol bad-port \
  bad-host wrong-path missing-pseudo malformed-capsule unknown-capsule unknown-context \
  bad-datagram ok oversize many early-fin capsule-fallback wrong-method; do
  probe "$c" --target "$T4:7"
  server_alive || fail "server died after case $c"
done
# The policy denies private ranges and the server's own addresses.
for t in 10.0.0.1:53 "$SI4:7" 127.0.0.1:7 "[::1]:7" "[$SI6]:7"; do
  probe denied-target --target "$t"
  server_alive || fail "server died after denied-target $t"
done
probe ok --target "[$T6]:7"
probe ok --target "$T4:7"
server_alive || fail "server died"

# Stop it cleanly so LeakSanitizer (sanitizer builds) reports at exit.
# SERVER_PID is the wrapper shell; the server itself is the only process
# in its namespace.
for p in $(ip netns pids "$NS_S"); do kill -TERM "$p"; done
for ((i = 0; i < 200; i++)); do
  [ -z "$(ip netns pids "$NS_S")" ] && break
  sleep 0.05
done
[ -z "$(ip netns pids "$NS_S")" ] || fail "server still running 10 s after SIGTERM"
rc=0
wait "$SERVER_PID" || rc=$?
[ "$rc" -eq 0 ] || FAILED+=("server exited $rc after SIGTERM")
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$TMP/server.log"; then
  FAILED+=("sanitizer report in the server log")
fi
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$TMP/probe.log"; then
  FAILED+=("sanitizer report from h3probe")
fi
if [ ${#FAILED[@]} -gt 0 ]; then
  printf '  %s\n' "${FAILED[@]}"
  fail "${#FAILED[@]} failure(s)"
fi
pretty "PASS"
