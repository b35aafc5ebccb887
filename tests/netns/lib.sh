# Shared helpers for masq's whole-topology tests, in the style of
# WireGuard's netns.sh. Source it, then call topo_up.
#
#   ┌──────────────┐ veth  ┌──────────────┐ veth  ┌──────────────┐
#   │ $NS_C client │───────│ $NS_S server │───────│ $NS_T target │
#   │ 198.51.100.2 │       │ 198.51.100.1 │       │ 192.0.2.2    │
#   │ 2001:db8:1::2│       │ 192.0.2.1    │       │ 2001:db8:2::2│
#   └──────────────┘       │ 2001:db8:1::1│       └──────────────┘
#                          │ 2001:db8:2::1│
#                          └──────────────┘
# The addresses are documentation ranges (RFC 5737 / RFC 3849), which the
# server's default target policy allows; they exist only inside these
# namespaces, which the test creates and removes itself. The server does
# not route between its two links: the only way from client to target is
# through masq.

set -eu
MASQ=${MASQ:-${1:-masq}}
ID=$$
NS_C=masq-c-$ID NS_S=masq-s-$ID NS_T=masq-t-$ID
C4=198.51.100.2 S4=198.51.100.1 SI4=192.0.2.1 T4=192.0.2.2
C6=2001:db8:1::2 S6=2001:db8:1::1 SI6=2001:db8:2::1 T6=2001:db8:2::2
TMP=$(mktemp -d /tmp/masq-test.XXXXXX)
PIDS=()
ETC_NS=()
TOKEN=test-token-$ID
NETNS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}

pretty() { printf '\033[1;36m[%s]\033[0m %s\n' "${TEST_NAME:-test}" "$*"; }
# fail MSG: report, stop the background processes (so their exit-time
# output, such as totals and sanitizer reports, is in the logs), show the
# logs, and exit 1.
fail() {
  printf '\033[1;31m[%s] FAIL:\033[0m %s\n' "${TEST_NAME:-test}" "$*"
  stop_all
  dump_logs
  exit 1
}
dump_logs() {
  local f
  for f in "$TMP"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f"
    tail -n 40 "$f"
    grep -a -H -E "^SUMMARY: [A-Za-z]+Sanitizer|runtime error:" "$f" || true
  done
}
n_c() { ip netns exec "$NS_C" "$@"; }
n_s() { ip netns exec "$NS_S" "$@"; }
n_t() { ip netns exec "$NS_T" "$@"; }

require_root() {
  if [ "$(id -u)" -ne 0 ] || ! ip netns add "masq-probe-$ID" 2>/dev/null; then
    echo "SKIP: needs root and network namespaces"; exit 77
  fi
  ip netns del "masq-probe-$ID"
}

# stop_all: SIGTERM every process bg started that is still a job of this
# shell (one already waited for may have had its PID reused), newest
# first; wait up to 5 s for each, then SIGKILL what is left. Safe to call
# more than once.
stop_all() {
  local p i live mine=()
  live=" $(jobs -p | tr '\n' ' ') "
  for p in "${PIDS[@]}"; do [[ $live == *" $p "* ]] && mine+=("$p"); done
  for ((i = ${#mine[@]} - 1; i >= 0; i--)); do kill "${mine[i]}" 2>/dev/null || true; done
  for p in "${mine[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}

cleanup() {
  set +e
  stop_all
  for ns in "$NS_C" "$NS_S" "$NS_T"; do ip netns del "$ns" 2>/dev/null; done
  for ns in "${ETC_NS[@]}"; do rm -rf "/etc/netns/$ns"; done
  rm -rf "$TMP"
}

topo_up() {
  require_root
  trap cleanup EXIT
  ip netns add "$NS_C"; ip netns add "$NS_S"; ip netns add "$NS_T"
  for ns in "$NS_C" "$NS_S" "$NS_T"; do ip -n "$ns" link set lo up; done
  ip link add vc-$ID netns "$NS_C" type veth peer name vs1-$ID netns "$NS_S"
  ip link add vt-$ID netns "$NS_T" type veth peer name vs2-$ID netns "$NS_S"
  n_c ip addr add $C4/24 dev vc-$ID; n_c ip addr add $C6/64 dev vc-$ID nodad
  n_s ip addr add $S4/24 dev vs1-$ID; n_s ip addr add $S6/64 dev vs1-$ID nodad
  n_s ip addr add $SI4/24 dev vs2-$ID; n_s ip addr add $SI6/64 dev vs2-$ID nodad
  n_t ip addr add $T4/24 dev vt-$ID; n_t ip addr add $T6/64 dev vt-$ID nodad
  n_c ip link set vc-$ID up; n_s ip link set vs1-$ID up; n_s ip link set vs2-$ID up
  n_t ip link set vt-$ID up
  n_s sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
  "$MASQ" gencert --cert "$TMP/cert.pem" --key "$TMP/key.pem" --name masq.test \
    --name $S4 --name $S6 >/dev/null 2>&1 || fail "gencert failed"
}

# bg NAME CMD...: run in the background, output to $TMP/NAME.log. CMD must
# be a program, not a shell function, so that the PID is the program's own
# (`ip netns exec` execs its command) and cleanup really ends it. CMD may
# start with n_c/n_s/n_t; they are expanded here so that the recorded PID
# is the program itself (ip netns exec execs it), not a subshell running
# the function, which would leave the program running after a kill.
bg() {
  local name=$1; shift
  case $1 in
    n_c) shift; set -- ip netns exec "$NS_C" "$@" ;;
    n_s) shift; set -- ip netns exec "$NS_S" "$@" ;;
    n_t) shift; set -- ip netns exec "$NS_T" "$@" ;;
  esac
  "$@" >"$TMP/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# ns_etc NS FILE TEXT: make FILE (hosts, resolv.conf, nsswitch.conf, ...)
# read TEXT inside NS: ip netns exec bind-mounts /etc/netns/NS/FILE over
# /etc/FILE for the programs it starts. Removed again by cleanup.
ns_etc() {
  local ns=$1 file=$2 text=$3
  mkdir -p "/etc/netns/$ns"
  ETC_NS+=("$ns")
  printf '%s\n' "$text" >"/etc/netns/$ns/$file"
}

# server_hosts LINES: the server resolves names from a hosts file holding
# localhost and LINES ("ADDR NAME" each), and from files only, so no
# lookup leaves its namespace and unknown names fail fast.
server_hosts() {
  ns_etc "$NS_S" hosts "127.0.0.1 localhost
$1"
  ns_etc "$NS_S" nsswitch.conf "hosts: files"
}

# alive PID: fail unless the process still runs.
alive() { kill -0 "$1" 2>/dev/null || fail "${2:-process $1} is no longer running"; }

# check_sanitizers: fail if any log shows a sanitizer report. Call after
# stop_all so that LeakSanitizer's exit-time report is in the logs too.
check_sanitizers() {
  local f
  for f in "$TMP"/*.log; do
    [ -f "$f" ] || continue
    if grep -qE "ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:" "$f"; then
      fail "sanitizer report in $f"
    fi
  done
}

# stop_server: SIGTERM the server start_server started; fail unless it
# was still running and exits with status 0 within 10 s. Its exit totals
# (the "stopped: HANDLER: ..." lines) are then in its log. Clears
# SERVER_PID.
stop_server() {
  local i rc=0
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server died during the test"
  kill "$SERVER_PID"
  for ((i = 0; i < 200; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$SERVER_PID" 2>/dev/null && fail "the server did not exit within 10s of SIGTERM"
  wait "$SERVER_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "the server exited with status $rc on SIGTERM"
  SERVER_PID=
}

# finish: stop everything, check the server shut down cleanly (exit 0 on
# SIGTERM) and that no sanitizer complained, then report success.
finish() {
  [ -z "${SERVER_PID:-}" ] || stop_server
  stop_all
  check_sanitizers
  pretty "PASS"
}

# udp_client NS HOST PORT SIZE COUNT TIMEOUT [--expect-none]: see udp_client.py.
udp_client() { local ns=$1; shift; ip netns exec "$ns" "$PY" "$NETNS_DIR/udp_client.py" "$@"; }

# wait_log FILE REGEX [SECONDS]: bounded wait for a readiness line.
wait_log() {
  local f=$1 re=$2 t=${3:-10} i
  for ((i = 0; i < t * 20; i++)); do
    grep -qE "$re" "$f" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "timed out after ${t}s waiting for /$re/ in $f"
}

# wait_log_fixed FILE STRING [SECONDS]: wait_log for a literal string.
wait_log_fixed() {
  local f=$1 str=$2 t=${3:-10} i
  for ((i = 0; i < t * 20; i++)); do
    grep -qF -- "$str" "$f" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "timed out after ${t}s waiting for '$str' in $f"
}

# wait_udp NS PORT, wait_tcp NS PORT: bounded wait (10 s) until
# something listens on UDP / TCP PORT in NS.
wait_udp() { wait_listen -u UDP "$@"; }
wait_tcp() { wait_listen -t TCP "$@"; }
wait_listen() {
  local opt=$1 proto=$2 ns=$3 port=$4 i
  for ((i = 0; i < 200; i++)); do
    ip netns exec "$ns" ss -Hln "$opt" "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  fail "nothing listens on $proto port $port in $ns"
}

# start_server [ARGS...]: masq server in $NS_S on port 443 with a token.
start_server() {
  bg server ip netns exec "$NS_S" "$MASQ" server --listen "[::]:443" --cert "$TMP/cert.pem" --key "$TMP/key.pem" \
    --token "$TOKEN" -v "$@"
  SERVER_PID=$LAST_PID
  wait_log "$TMP/server.log" "listening on"
}

# start_forward NAME ARGS...: masq forward in $NS_C to the server.
start_forward() {
  local name=$1; shift
  bg "$name" ip netns exec "$NS_C" "$MASQ" forward --proxy "https://$S4:443" --ca "$TMP/cert.pem" \
    --token "$TOKEN" -v "$@"
  wait_log "$TMP/$name.log" "connected to"
}

# start_connect [ARGS...]: masq connect in $NS_C to the server, output in
# $TMP/client.log. Waits (15 s at most) for the tunnel to come up, then
# sets CLIENT_PID and MTU, the tunnel MTU from its "up" line.
# shellcheck disable=SC2034 # the variables it sets are for the tests
start_connect() {
  bg client n_c "$MASQ" connect --proxy "https://$S4:443" --ca "$TMP/cert.pem" --token "$TOKEN" "$@"
  CLIENT_PID=$LAST_PID
  wait_log "$TMP/client.log" "masq connect: up" 15
  MTU=$(sed -nE 's/.*: up on [^:]+: mtu ([0-9]+),.*/\1/p' "$TMP/client.log")
}

# A UDP echo server (python3, from Debian) on PORT in NS.
start_echo() {
  local ns=$1 port=$2
  bg "echo-$port" ip netns exec "$ns" "$PY" "$NETNS_DIR/udp_echo.py" "$port"
  wait_udp "$ns" "$port"
}

# start_tcp_targets: tcp_targets.py in $NS_T, IPv4 and IPv6: port 7000
# echoes, 7001 resets after reading, 7004 accepts and never reads (see
# tcp_targets.py); waits until all three listen.
start_tcp_targets() {
  local port
  bg targets n_t "$PY" "$NETNS_DIR/tcp_targets.py" 7000
  for port in 7000 7001 7004; do wait_tcp "$NS_T" $port; done
}

# blackhole_tcp PORT: TCP PORT in $NS_T is silent: its SYNs are dropped,
# so a connection attempt to it times out instead of being refused.
blackhole_tcp() {
  n_t nft -f - <<NFT
table inet blackhole {
  chain in {
    type filter hook input priority 0;
    tcp dport $1 drop
  }
}
NFT
}

# make_www: random files for the HTTP tests: $TMP/www/small (100 kB) and
# $TMP/www/big ($MIB MiB), their SHA-256 in SMALL_SUM and BIG_SUM. MIB is
# 1024, or 256 for a sanitizer build (several times slower), unless
# MASQ_TEST_MIB says otherwise.
# shellcheck disable=SC2034 # the variables it sets are for the tests
make_www() {
  MIB=1024
  grep -q __asan_init "$MASQ" 2>/dev/null && MIB=256
  MIB=${MASQ_TEST_MIB:-$MIB}
  mkdir -p "$TMP/www"
  head -c 100000 /dev/urandom >"$TMP/www/small"
  head -c $((MIB << 20)) /dev/urandom >"$TMP/www/big"
  SMALL_SUM=$(sha256sum <"$TMP/www/small" | cut -d' ' -f1)
  BIG_SUM=$(sha256sum <"$TMP/www/big" | cut -d' ' -f1)
}

# rate T0 T1: "SECONDS s, SPEED MB/s" for $MIB MiB moved between the
# times T0 and T1 (from date +%s.%N).
rate() { awk "BEGIN {printf \"%.1f s, %.0f MB/s\", $2 - $1, $MIB * 1.048576 / ($2 - $1)}"; }

# start_http_target: http_target.py in $NS_T on port 8000, IPv4 and IPv6:
# GET serves the files in $TMP/www, PUT and POST answer the body's SHA-256
# (see http_target.py); waits until it listens.
start_http_target() {
  mkdir -p "$TMP/www"
  bg http n_t "$PY" "$NETNS_DIR/http_target.py" 8000 "$TMP/www"
  wait_tcp "$NS_T" 8000
}

# find_probe: sets PROBE to the h3probe next to masq (or in $MASQ_BUILD);
# skips the test (exit 77) if it was not built.
find_probe() {
  PROBE=${MASQ_BUILD:+$MASQ_BUILD/h3probe}
  [ -n "$PROBE" ] && [ -x "$PROBE" ] || PROBE=$(dirname "$MASQ")/h3probe
  [ -x "$PROBE" ] || { echo "SKIP: h3probe not built (looked in ${MASQ_BUILD:-$(dirname "$MASQ")})"; exit 77; }
  FAILED=()
}

# probe CASE [ARGS...]: one h3probe case from the client namespace against
# the server; it must exit 0. Output goes to $TMP/probe.log; failures are
# collected in FAILED so one run reports every case that misbehaves, and
# the server must still be running afterwards.
probe() {
  local c=$1 out rc=0; shift
  out=$(n_c "$PROBE" --proxy "$S4:443" --ca "$TMP/cert.pem" --sni masq.test --token "$TOKEN" \
    --case "$c" "$@" 2>>"$TMP/probe.log") || rc=$?
  echo "$out" >>"$TMP/probe.log"
  pretty "$out"
  [ "$rc" -eq 0 ] || FAILED+=("--case $c $* (exit $rc): $out")
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server died after case $c $*"
}

# probe_report: fail listing every collected failure, if any.
probe_report() {
  [ ${#FAILED[@]} -eq 0 ] && return 0
  printf '  %s\n' "${FAILED[@]}"
  fail "${#FAILED[@]} failure(s)"
}
