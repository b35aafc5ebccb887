#!/usr/bin/env bash
# masq against the alternatives, side by side on one impaired link, in one run.
#
#   sudo bench/compare.sh BUILD_DIR [--quick]
#
# BUILD_DIR holds masq and the bench tools impair and udpprobe (cmake
# builds bench/*.c). --quick: one run per figure and short durations, for
# development. The result replaces the section of BENCHMARKS.md between
# <!-- compare:begin --> and <!-- compare:end --> (appended if absent).
#
# Topology (network namespaces created here and deleted on exit):
#
#   client ──veth── link ──veth── server ──veth── target
#   198.51.100.2    impair        203.0.113.2     192.0.2.2
#                                 192.0.2.1
#
# In the impaired profiles the link namespace routes everything between
# its two veths through a TUN device that bench/impair reads and writes,
# applying the profile's loss, delay, jitter and rate (the clean profile
# forwards in the kernel); every system crosses the same link:
#   direct        no tunnel: the client routes to the target via link and server
#   masq-ip       masq server --nat / masq connect (CONNECT-IP, full tunnel)
#   masq-ip-cubic the same with --cc cubic at both ends (CUBIC, not BBR)
#   masq-udp      masq server / masq forward --udp (CONNECT-UDP, UDP only)
#   masq-socks    masq socks (TCP only), when `masq socks --help` works
#   wireguard-go  wireguard-go at both ends, MTU 1420, masquerade on the server
#
# Environment: PROFILES, SYSTEMS (subsets, in order), RUNS (per figure),
# FIGURES (a subset of "rtt tcp udp", for development; default all),
# OUT (the file to update; default BENCHMARKS.md beside bench/, NO_WRITE=1
# to only print), KEEP_LOGS=DIR (copy every log and the raw results there).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

usage() { echo "usage: sudo $0 BUILD_DIR [--quick]" >&2; exit 2; }
BUILD='' QUICK=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$BUILD" ] || usage; BUILD=$a ;;
  esac
done
[ -n "$BUILD" ] || usage
die() { echo "compare: $*" >&2; exit 1; }
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || die "no such build directory"
MASQ=$BUILD/masq IMPAIR=$BUILD/impair PROBE=$BUILD/udpprobe TPROBE=$BUILD/tcpprobe
for b in "$MASQ" "$IMPAIR" "$PROBE" "$TPROBE"; do
  [ -x "$b" ] || die "$b is missing: cmake -S $ROOT -B $BUILD && cmake --build $BUILD"
done
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TUN devices): sudo $0 $*"
for c in ip iperf3 python3 nft timeout; do
  command -v "$c" >/dev/null || die "needs $c (run scripts/setup.sh)"
done

if [ "$QUICK" = 1 ]; then
  RUNS=${RUNS:-1} TCP_S=3 STEP_S=0.5 IDLE_S=3 LOAD_S=3 SEARCH="--tries 1 --settle 3 --bisect 2"
else
  RUNS=${RUNS:-3} TCP_S=6 STEP_S=1 IDLE_S=3 LOAD_S=3 SEARCH="--tries 2 --settle 10 --bisect 4"
fi
PROFILES=${PROFILES:-clean mobile wifi}
SYSTEMS=${SYSTEMS:-direct masq-ip masq-ip-cubic masq-udp masq-socks wireguard-go}
FIGURES=${FIGURES:-rtt tcp udp}
want() { case " $FIGURES " in *" $1 "*) return 0 ;; esac; return 1; }
OUT=${OUT:-$ROOT/BENCHMARKS.md}

ID=$$
NS_C=mqb-c-$ID NS_L=mqb-l-$ID NS_S=mqb-s-$ID NS_T=mqb-t-$ID
C4=198.51.100.2 LC4=198.51.100.1 LS4=203.0.113.1 S4=203.0.113.2 SI4=192.0.2.1 T4=192.0.2.2
IMP=imp-$ID SRV_TUN=mqs-$ID CLI_TUN=mqc-$ID WG_S=wgs-$ID WG_C=wgc-$ID
PROBE_PORT=7000 FWD_PORT=7001 WG_PORT=51820 TCP_PORT=5300 SOCKS=127.0.0.1:1080
TOKEN=bench-token-$ID
WORK=$(mktemp -d /tmp/masq-compare.XXXXXX) || die "mktemp failed"
LOGS=$WORK/logs RESULTS=$WORK/results.tsv META=$WORK/meta.txt
mkdir -p "$LOGS" && : >"$RESULTS" && : >"$META" || die "cannot write to $WORK"
PIDS=() LOADS=()
START_TS=$(date +%s)

say() { printf '\033[1;36m[compare %4ss]\033[0m %s\n' "$(($(date +%s) - START_TS))" "$*"; }
warn() { printf '\033[1;33m[compare]\033[0m %s\n' "$*"; }
n_c() { ip netns exec "$NS_C" "$@"; }
n_l() { ip netns exec "$NS_L" "$@"; }
n_s() { ip netns exec "$NS_S" "$@"; }
n_t() { ip netns exec "$NS_T" "$@"; }

# ---- processes ------------------------------------------------------------
# start_bg NAME CMD...: CMD in the background (a program, so that the PID
# is its own: `ip netns exec` and `env` exec theirs), output to its log.
start_bg() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL; only PIDs start_bg gave.
stop_pid() {
  local p=$1 i q rest=()
  [ -n "$p" ] || return 0
  for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || rest+=("$q"); done
  [ "${#rest[@]}" -ne "${#PIDS[@]}" ] || return 0
  PIDS=("${rest[@]}")
  kill "$p" 2>/dev/null
  for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
# wait_for SECONDS CMD...: poll CMD every 50 ms, bounded.
wait_for() {
  local t=$1 i; shift
  for ((i = 0; i < t * 20; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}
log_has() { grep -qE "$2" "$LOGS/$1.log" 2>/dev/null; }
log_tail() { tail -n "${2:-2}" "$LOGS/$1.log" 2>/dev/null | tr '\n\t' '  ' | cut -c1-200; }

ns_inode() { stat -L -c %i "/run/netns/$1" 2>/dev/null; }
cleanup() {
  set +e
  trap - EXIT INT TERM
  local i ino
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  PIDS=()
  # A masq killed rather than stopped leaves state files named after the
  # namespace's inode (src/io/nat.h, src/client/ipconf.c).
  for ns in "$NS_S" "$NS_C"; do
    ino=$(ns_inode "$ns") && rm -f /run/masq/*."$ino".state /run/masq/*."$ino".resolv*
  done
  for ns in "$NS_C" "$NS_L" "$NS_S" "$NS_T"; do ip netns del "$ns" 2>/dev/null; done
  rm -f "/var/run/wireguard/$WG_S.sock" "/var/run/wireguard/$WG_C.sock"
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS" && cp -r "$LOGS" "$RESULTS" "$META" "$KEEP_LOGS"/
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT TERM

# ---- results --------------------------------------------------------------
# rec PROFILE SYSTEM RUN METRIC VALUE
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
HZ=$(getconf CLK_TCK)

# ---- topology ---------------------------------------------------------------
topo_up() {
  local ns
  for ns in "$NS_C" "$NS_L" "$NS_S" "$NS_T"; do
    ip netns add "$ns" && ip -n "$ns" link set lo up || return 1
  done
  ip link add "c-$ID" netns "$NS_C" type veth peer name "lc-$ID" netns "$NS_L" &&
  ip link add "ls-$ID" netns "$NS_L" type veth peer name "s-$ID" netns "$NS_S" &&
  ip link add "st-$ID" netns "$NS_S" type veth peer name "t-$ID" netns "$NS_T" &&
  ip -n "$NS_C" addr add $C4/24 dev "c-$ID" &&
  ip -n "$NS_L" addr add $LC4/24 dev "lc-$ID" &&
  ip -n "$NS_L" addr add $LS4/24 dev "ls-$ID" &&
  ip -n "$NS_S" addr add $S4/24 dev "s-$ID" &&
  ip -n "$NS_S" addr add $SI4/24 dev "st-$ID" &&
  ip -n "$NS_T" addr add $T4/24 dev "t-$ID" || return 1
  for l in "$NS_C c-$ID" "$NS_L lc-$ID" "$NS_L ls-$ID" "$NS_S s-$ID" "$NS_S st-$ID" "$NS_T t-$ID"; do
    # shellcheck disable=SC2086
    ip -n ${l% *} link set "${l#* }" up || return 1
  done
  # The client reaches the server (and, for "direct", the target) via the
  # link; the target answers the client's own address via the server.
  ip -n "$NS_C" route add 203.0.113.0/24 via $LC4 &&
  ip -n "$NS_S" route add 198.51.100.0/24 via $LS4 &&
  ip -n "$NS_T" route add 198.51.100.0/24 via $SI4 &&
  ip -n "$NS_L" route add 192.0.2.0/24 via $S4 || return 1
  # The link forwards, and everything it forwards goes through the TUN:
  # packets from the veths find table 100 (default dev TUN); packets the
  # relay writes back arrive on the TUN and use the main table.
  n_l sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0 &&
  n_s sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=0 &&
  ip -n "$NS_L" rule add pref 100 iif "$IMP" lookup main &&
  ip -n "$NS_L" rule add pref 110 lookup 100 || return 1
  "$MASQ" gencert --cert "$WORK/cert.pem" --key "$WORK/key.pem" --name masq.bench \
    --name $S4 >"$LOGS/gencert.log" 2>&1 || return 1
}

# ---- profiles ---------------------------------------------------------------
# Each direction is impaired on its own with the same settings (so a round
# trip sees the delay twice and two chances of loss). MAXLOSS is the loss
# the UDP rate search tolerates: 1% beyond the link's own.
profile_args() {
  case $1 in
    clean) echo "" ;;
    relay) echo "" ;;
    mobile) echo "--delay 25 --delay-max 75 --period 3 --jitter 15 --loss 2" ;;
    wifi) echo "--delay 10 --loss 5" ;;
    *) return 1 ;;
  esac
}
profile_title() {
  case $1 in
    clean) echo "clean (plain veth links, kernel forwarding, no relay)" ;;
    relay) echo "relay (the impairment relay with no impairment)" ;;
    mobile) echo "mobile (RTT 50–150 ms, jitter up to 30 ms, 2% loss)" ;;
    wifi) echo "lossy Wi-Fi (RTT 20 ms, 5% loss)" ;;
  esac
}
profile_maxloss() { case $1 in clean | relay) echo 1 ;; mobile) echo 3 ;; wifi) echo 6 ;; esac; }
# The clean profile leaves the user-space relay out: it costs every system
# a wake-up per packet and caps them all near the same packet rate, which
# would hide the tunnels' own limits.
profile_relay() { [ "$1" != clean ]; }

IMPAIR_PID=
impair_up() { # PROFILE
  local args
  profile_relay "$1" || { n_l ip route flush table 100 2>/dev/null; return 0; }
  args=$(profile_args "$1") || return 1
  # shellcheck disable=SC2086
  start_bg "impair-$1" ip netns exec "$NS_L" "$IMPAIR" --tun "$IMP" --side-a 198.51.100.0/24 $args
  IMPAIR_PID=$LAST_PID
  wait_for 5 log_has "impair-$1" "ready on" || { warn "impair: $(log_tail "impair-$1")"; return 1; }
  n_l ip link set "$IMP" mtu 1500 txqueuelen 1000 up &&
  n_l ip route replace default dev "$IMP" table 100
}
impair_down() { # PROFILE: stop the relay; its counters go into the report
  profile_relay "$1" || return 0
  stop_pid "$IMPAIR_PID"
  IMPAIR_PID=
  grep '^impair: towards' "$LOGS/impair-$1.log" | sed 's/^/  /'
  meta "impair_$1" "$(awk '/^impair: towards/ {
      printf "%s%s %d packets, %.2f%% lost at random, %d dropped for lack of room",
        (n++ ? "; " : ""), ($3 == "A:" ? "towards the client" : "towards the server"),
        $5, $5 ? 100 * $7 / $5 : 0, $9 + $11 }' "$LOGS/impair-$1.log")"
}

# ---- measurements -----------------------------------------------------------
# iperf_run NAME ARGS...: iperf3 from the client to the target; prints
# "MBIT BYTES" (receiver side) or fails with the reason on stderr.
iperf_run() {
  local name=$1; shift
  local out=$LOGS/iperf-$name.json
  timeout $((TCP_S + 30)) ip netns exec "$NS_C" iperf3 -c $T4 -t "$TCP_S" \
    --connect-timeout 5000 -J "$@" >"$out" 2>&1
  python3 - "$out" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit("iperf3 gave no result (%s)" % e)
if d.get("error"):
    sys.exit("iperf3: " + d["error"])
s = d["end"]["sum_received"]
print("%.1f %d" % (s["bits_per_second"] / 1e6, s["bytes"]))
PY
}
# ping_parse FILE: "P50 P99 LOSS" from a udpprobe ping output, if any
# probe came back.
ping_parse() { awk '/^ping sent/ && $5 > 0 { print $9, $11, $7 }' "$1"; }
# restart the mobile profile's delay swing, so that every system's test
# sees the same course of delays
swing() { [ -n "$IMPAIR_PID" ] && kill -USR2 "$IMPAIR_PID" 2>/dev/null; return 0; }

# tcpprobe_run NAME STREAMS: bulk TCP through the SOCKS5 front end; prints
# "MBIT BYTES" or fails with the reason on stderr.
tcpprobe_run() {
  local out=$LOGS/tcpprobe-$1.log
  timeout $((TCP_S + 30)) ip netns exec "$NS_C" "$TPROBE" send $T4 $TCP_PORT --streams "$2" \
    --seconds "$TCP_S" --socks $SOCKS >"$out" 2>&1 || { tail -n 1 "$out" >&2; return 1; }
  awk '/^result/ { print $3, $5 }' "$out"
}

# measure PROFILE SYSTEM RUN HOST PORT KIND: the figures of one system.
# KIND: ip (TCP and UDP through a routed path or tunnel), udp (UDP only),
# socks (TCP through the SOCKS5 front end, UDP through its UDP ASSOCIATE
# when udpprobe speaks SOCKS5). UPROBE_OPTS: extra udpprobe options.
measure() {
  local prof=$1 sys=$2 run=$3 host=$4 port=$5 kind=$6
  BYTES=0
  # SOCKS5 without UDP ASSOCIATE support in udpprobe: TCP only
  [ "$kind" != socks ] || [ -n "$UPROBE_OPTS" ] || { want tcp && measure_tcp_socks "$@"; return 0; }
  if want rtt; then measure_idle "$@"; fi
  if want tcp; then
    case $kind in
      ip) measure_tcp_ip "$@" ;;
      socks) measure_tcp_socks "$@" ;;
    esac
  fi
  if want udp; then measure_udp "$@"; fi
}

# the figures' shared helpers: fig NAME VALUE records one figure of this run
fig() { rec "$prof" "$sys" "$run" "$1" "$2"; }
# ucmd SUBCOMMAND ARGS...: sets UCMD to udpprobe's command line in the
# client namespace, UPROBE_OPTS appended (an array, so that timeout and
# start_bg run the program itself)
ucmd() {
  # shellcheck disable=SC2206 # UPROBE_OPTS holds several options
  UCMD=(ip netns exec "$NS_C" "$PROBE" "$@" $UPROBE_OPTS)
}

fig_load_rtt() { # TAG WHY: the round trips sampled under load, or WHY as a failure
  local r a b
  r=$(ping_parse "$LOGS/ping-load-$1.log")
  if [ -n "$r" ]; then
    read -r a b _ <<<"$r"
    fig load_p50 "$a"; fig load_p99 "$b"
  else
    fig fail "$2"
  fi
}

measure_idle() { # idle round trips, first, while the tunnel's queues are empty
  local prof=$1 sys=$2 run=$3 host=$4 port=$5 tag=$1-$2-$3 r a b c
  swing
  ucmd ping "$host" "$port" --interval 10 --seconds "$IDLE_S"
  "${UCMD[@]}" >"$LOGS/ping-idle-$tag.log" 2>&1
  r=$(ping_parse "$LOGS/ping-idle-$tag.log")
  if [ -n "$r" ]; then
    read -r a b c <<<"$r"
    fig idle_p50 "$a"; fig idle_p99 "$b"; fig idle_loss "${c%\%}"
  else
    fig fail "idle ping: $(log_tail "ping-idle-$tag")"
  fi
}

measure_tcp_socks() { # bulk TCP through the SOCKS5 front end, 1 and 4 streams
  local prof=$1 sys=$2 run=$3 tag=$1-$2-$3 n r
  for n in 1 4; do
    swing
    if r=$(tcpprobe_run "$tag-$n" $n 2>"$LOGS/err"); then
      fig tcp$n "${r% *}"; BYTES=$((BYTES + ${r#* }))
    else
      fig fail "TCP $n stream(s): $(head -c 150 "$LOGS/err")"
    fi
  done
}

measure_tcp_ip() { # iperf3, one stream with round trips sampled, then four
  local prof=$1 sys=$2 run=$3 host=$4 port=$5 tag=$1-$2-$3 r a b ping_pid
  start_bg "ping-load-$tag" ip netns exec "$NS_C" "$PROBE" ping "$host" "$port" \
    --interval 10 --seconds "$((TCP_S - 1))" --after 0.5
  ping_pid=$LAST_PID
  swing
  if r=$(iperf_run "$tag-1" 2>"$LOGS/err"); then
    fig tcp1 "${r% *}"; BYTES=$((BYTES + ${r#* }))
  else
    fig fail "TCP 1 stream: $(head -c 150 "$LOGS/err")"
    iperf_server
  fi
  wait "$ping_pid" 2>/dev/null; stop_pid "$ping_pid"
  fig_load_rtt "$tag" "no probe answered during the TCP test"
  swing
  if r=$(iperf_run "$tag-4" -P 4 2>"$LOGS/err"); then
    fig tcp4 "${r% *}"; BYTES=$((BYTES + ${r#* }))
  else
    fig fail "TCP 4 streams: $(head -c 150 "$LOGS/err")"
    iperf_server
  fi
}

measure_udp() { # the highest paced rate under the loss limit; for a
  # UDP-only tunnel also round trips under a UDP load
  local prof=$1 sys=$2 run=$3 host=$4 port=$5 kind=$6 tag=$1-$2-$3 r a b c maxloss
  maxloss=$(profile_maxloss "$prof")
  swing
  # shellcheck disable=SC2086 # $SEARCH holds several options
  ucmd rate "$host" "$port" --step "$STEP_S" \
    --max-loss "$maxloss" --start 8 --grow 4 --max 3200 --drain 400 $SEARCH
  timeout 300 "${UCMD[@]}" >"$LOGS/udp-$tag.log" 2>&1
  r=$(awk '/^result/ { print $3, $5, $9 }' "$LOGS/udp-$tag.log")
  local udp_good=
  if [ -n "$r" ]; then
    read -r a b c <<<"$r"
    BYTES=$((BYTES + c))
    if awk -v g="$b" 'BEGIN { exit !(g > 0) }'; then
      fig udp "$b"; udp_good=$b
    else
      fig fail "UDP: no rate met the loss limit ($(grep '^step 0' "$LOGS/udp-$tag.log" | cut -c1-120))"
    fi
  else
    fig fail "UDP rate search: $(log_tail "udp-$tag")"
  fi
  [ "$kind" = udp ] && [ -n "$udp_good" ] || return 0
  # Under load for a UDP-only tunnel: a paced flow at 80% of its best
  # rate over the same QUIC connection.
  local load load_pid
  load=$(awk -v g="$udp_good" 'BEGIN { printf "%.1f", g * 0.8 }')
  # after the search, wait (bounded) until the tunnel's queues drained
  ucmd settle "$host" "$port" --timeout 20
  timeout 25 "${UCMD[@]}" >/dev/null 2>&1
  ucmd load "$host" "$port" --mbit "$load" --seconds "$LOAD_S"
  start_bg "udpload-$tag" "${UCMD[@]}"
  load_pid=$LAST_PID
  swing
  ucmd ping "$host" "$port" --interval 10 \
    --seconds "$(awk -v s="$LOAD_S" 'BEGIN { print s - 0.5 }')" --after 0.3
  "${UCMD[@]}" >"$LOGS/ping-load-$tag.log" 2>&1
  wait "$load_pid" 2>/dev/null; stop_pid "$load_pid"
  r=$(awk '/^result/ { print $9 }' "$LOGS/udpload-$tag.log")
  [ -n "$r" ] && BYTES=$((BYTES + r))
  fig_load_rtt "$tag" "every probe was lost under UDP load at $load Mbit/s"
}

# ---- systems ----------------------------------------------------------------
# Each sys_up_X sets HOST PORT KIND, CLI_PID and SRV_PID (the processes
# whose CPU and memory count; empty for none) and STARTUP_MS, or fails
# with REASON; sys_down_X undoes it.
REASON='' UPROBE_OPTS=''
SRV_PID='' CLI_PID='' STARTUP_MS=''

# first_packet NAME HOST PORT T0: time from T0 (ns) to the first probe
# answered through the system; sets STARTUP_MS.
first_packet() {
  local out
  out=$(ip netns exec "$NS_C" "$PROBE" first "$2" "$3" --timeout 20 2>/dev/null) || {
    REASON="no packet through it within 20 s ($(log_tail "$1" 1))"; return 1; }
  STARTUP_MS=$(awk -v a="$4" '/^first/ { printf "%.0f", ($2 - a) / 1e6 }' <<<"$out")
}

sys_up_direct() {
  n_s sysctl -qw net.ipv4.ip_forward=1 &&
  n_c ip route add 192.0.2.0/24 via $LC4 || { REASON="cannot set up the routes"; return 1; }
  n_c ip route get $T4 | grep -q "via $LC4" || { REASON="no route via the link"; return 1; }
  HOST=$T4 PORT=$PROBE_PORT KIND=ip SRV_PID='' CLI_PID='' STARTUP_MS=''
}
sys_down_direct() {
  n_c ip route del 192.0.2.0/24 via $LC4 2>/dev/null
  n_s sysctl -qw net.ipv4.ip_forward=0
}

masq_server() { # NAME ARGS...
  local name=$1; shift
  start_bg "$name" ip netns exec "$NS_S" "$MASQ" server --cc "$CC_ALGO" --listen "[::]:443" \
    --cert "$WORK/cert.pem" --key "$WORK/key.pem" --token "$TOKEN" --allow 192.0.2.0/24 "$@"
  SRV_PID=$LAST_PID
  wait_for 10 log_has "$name" "listening on" || {
    REASON="masq server did not come up: $(log_tail "$name")"; return 1; }
}

# CC_ALGO: the congestion control of both masq ends (masq-ip-cubic sets it)
CC_ALGO=bbr
sys_up_masq-ip() {
  masq_server "masq-ip-server-$1" --nat --tun "$SRV_TUN" || return 1
  local t0
  t0=$(date +%s%N)
  start_bg "masq-ip-client-$1" ip netns exec "$NS_C" "$MASQ" connect --cc "$CC_ALGO" \
    --proxy "https://$S4:443" --ca "$WORK/cert.pem" --token "$TOKEN" --tun "$CLI_TUN"
  CLI_PID=$LAST_PID
  first_packet "masq-ip-client-$1" $T4 $PROBE_PORT "$t0" || return 1
  n_c ip route get $T4 | grep -q "dev $CLI_TUN" || { REASON="the target is not routed through $CLI_TUN"; return 1; }
  HOST=$T4 PORT=$PROBE_PORT KIND=ip
}
# the same tunnel with CUBIC instead of masq's default BBR at both ends
sys_up_masq-ip-cubic() {
  CC_ALGO=cubic
  sys_up_masq-ip "$@"
  local rc=$?
  CC_ALGO=bbr
  return $rc
}
sys_down_masq-ip-cubic() { sys_down_masq-ip; }
sys_down_masq-ip() { stop_pid "$CLI_PID"; stop_pid "$SRV_PID"; }

sys_up_masq-udp() {
  masq_server "masq-udp-server-$1" || return 1
  local t0
  t0=$(date +%s%N)
  start_bg "masq-udp-client-$1" ip netns exec "$NS_C" "$MASQ" forward --proxy "https://$S4:443" \
    --ca "$WORK/cert.pem" --token "$TOKEN" --udp "127.0.0.1:$FWD_PORT:$T4:$PROBE_PORT"
  CLI_PID=$LAST_PID
  first_packet "masq-udp-client-$1" 127.0.0.1 $FWD_PORT "$t0" || return 1
  HOST=127.0.0.1 PORT=$FWD_PORT KIND=udp
}
sys_down_masq-udp() { stop_pid "$CLI_PID"; stop_pid "$SRV_PID"; }

SOCKS_WHY=
socks_available() {
  [ -n "$SOCKS_WHY" ] && return 1
  local out
  if ! out=$("$MASQ" socks --help 2>&1); then
    SOCKS_WHY="not available: \`masq socks --help\` failed ($(head -n 1 <<<"$out" | cut -c1-80))"
    return 1
  fi
}
sys_up_masq-socks() {
  masq_server "masq-socks-server-$1" || return 1
  local t0 out
  t0=$(date +%s%N)
  start_bg "masq-socks-client-$1" ip netns exec "$NS_C" "$MASQ" socks --proxy "https://$S4:443" \
    --ca "$WORK/cert.pem" --token "$TOKEN" --listen $SOCKS
  CLI_PID=$LAST_PID
  out=$(ip netns exec "$NS_C" "$TPROBE" first $T4 $TCP_PORT --socks $SOCKS --timeout 20 2>/dev/null) || {
    REASON="no byte through it within 20 s ($(log_tail "masq-socks-client-$1" 1))"; return 1; }
  STARTUP_MS=$(awk -v a="$t0" '/^first/ { printf "%.0f", ($2 - a) / 1e6 }' <<<"$out")
  HOST=$T4 PORT=$PROBE_PORT KIND=socks
  # UDP ASSOCIATE through the same front end, when udpprobe speaks SOCKS5
  if "$PROBE" --help 2>&1 | grep -q -- '--socks'; then UPROBE_OPTS="--socks $SOCKS"; fi
}
sys_down_masq-socks() { stop_pid "$CLI_PID"; stop_pid "$SRV_PID"; }

WG_READY=0
wg_keys() {
  [ "$WG_READY" = 1 ] && return 0
  command -v wireguard-go >/dev/null && command -v wg >/dev/null || {
    REASON="not available: wireguard-go or wg missing (run scripts/setup.sh)"; return 1; }
  (umask 077 && wg genkey >"$WORK/wg-s.key" && wg genkey >"$WORK/wg-c.key") &&
  wg pubkey <"$WORK/wg-s.key" >"$WORK/wg-s.pub" && wg pubkey <"$WORK/wg-c.key" >"$WORK/wg-c.pub" ||
    { REASON="wg genkey failed"; return 1; }
  WG_READY=1
}
wg_start() { # NS DEV LOGNAME: wireguard-go in the foreground; sets LAST_PID
  start_bg "$3" ip netns exec "$1" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$2"
  wait_for 10 test -S "/var/run/wireguard/$2.sock" || {
    REASON="wireguard-go did not come up: $(log_tail "$3")"; return 1; }
}
sys_up_wireguard-go() {
  wg_keys || return 1
  wg_start "$NS_S" "$WG_S" "wg-server-$1" || return 1
  SRV_PID=$LAST_PID
  n_s wg set "$WG_S" private-key "$WORK/wg-s.key" listen-port $WG_PORT \
    peer "$(cat "$WORK/wg-c.pub")" allowed-ips 10.99.0.2/32 &&
  n_s ip addr add 10.99.0.1/24 dev "$WG_S" &&
  n_s ip link set "$WG_S" mtu 1420 up &&
  n_s sysctl -qw net.ipv4.ip_forward=1 &&
  n_s nft -f - <<EOF || { REASON="cannot configure the wireguard-go server"; return 1; }
table ip mqbench {
  chain post { type nat hook postrouting priority srcnat; ip saddr 10.99.0.0/24 oifname "st-$ID" masquerade; }
}
EOF
  local t0
  t0=$(date +%s%N)
  wg_start "$NS_C" "$WG_C" "wg-client-$1" || return 1
  CLI_PID=$LAST_PID
  n_c wg set "$WG_C" private-key "$WORK/wg-c.key" \
    peer "$(cat "$WORK/wg-s.pub")" endpoint "$S4:$WG_PORT" allowed-ips 10.99.0.0/24,192.0.2.0/24 &&
  n_c ip addr add 10.99.0.2/24 dev "$WG_C" &&
  n_c ip link set "$WG_C" mtu 1420 up &&
  n_c ip route add 192.0.2.0/24 dev "$WG_C" || { REASON="cannot configure the wireguard-go client"; return 1; }
  first_packet "wg-client-$1" $T4 $PROBE_PORT "$t0" || return 1
  HOST=$T4 PORT=$PROBE_PORT KIND=ip
}
sys_down_wireguard-go() {
  stop_pid "$CLI_PID"; stop_pid "$SRV_PID"
  n_s nft delete table ip mqbench 2>/dev/null
  n_s sysctl -qw net.ipv4.ip_forward=0
}

# run_system PROFILE SYSTEM RUN
run_system() {
  local prof=$1 sys=$2 run=$3 c0 s0
  if [ "$sys" = masq-socks ]; then
    socks_available || { rec "$prof" "$sys" "$run" na "$SOCKS_WHY"; return; }
  fi
  REASON='' SRV_PID='' CLI_PID='' STARTUP_MS='' UPROBE_OPTS=''
  if ! "sys_up_$sys" "$prof-$run"; then
    warn "$prof/$sys run $run: failed: $REASON"
    case $REASON in
      "not available"*) rec "$prof" "$sys" "$run" na "$REASON" ;;
      *) rec "$prof" "$sys" "$run" fail "$REASON" ;;
    esac
    "sys_down_$sys"
    return
  fi
  [ -n "$STARTUP_MS" ] && rec "$prof" "$sys" "$run" startup "$STARTUP_MS"
  c0=$([ -n "$CLI_PID" ] && cpu_ticks "$CLI_PID") s0=$([ -n "$SRV_PID" ] && cpu_ticks "$SRV_PID")
  BYTES=0
  measure "$prof" "$sys" "$run" "$HOST" "$PORT" "$KIND"
  local p
  for p in CLI SRV; do
    local pid_var=${p}_PID
    local pid=${!pid_var} role=client before=$c0
    [ "$p" = SRV ] && role=server before=$s0
    [ -n "$pid" ] || continue
    if ! kill -0 "$pid" 2>/dev/null; then
      rec "$prof" "$sys" "$run" fail "the $role process died during the run"
      continue
    fi
    local after kb
    after=$(cpu_ticks "$pid") kb=$(vm_hwm_kb "$pid")
    [ -n "$kb" ] && rec "$prof" "$sys" "$run" "mem_$role" "$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')"
    [ "$BYTES" -gt 0 ] && rec "$prof" "$sys" "$run" "cpu_$role" \
      "$(awk -v t=$((after - before)) -v hz="$HZ" -v b="$BYTES" 'BEGIN { printf "%.2f", t / hz / (b / 1e9) }')"
  done
  "sys_down_$sys"
}

# ---- main -------------------------------------------------------------------
say "namespaces ${NS_C%-*}-{c,l,s,t}-$ID, logs in $WORK; $RUNS run(s) per figure, profiles: $PROFILES"
topo_up || die "cannot build the topology"
start_bg probe-server ip netns exec "$NS_T" "$PROBE" serve $PROBE_PORT
wait_for 5 log_has probe-server ready || die "udpprobe serve did not start: $(log_tail probe-server)"
start_bg tcp-sink ip netns exec "$NS_T" "$TPROBE" sink $TCP_PORT
wait_for 5 log_has tcp-sink ready || die "tcpprobe sink did not start: $(log_tail tcp-sink)"
IPERF_PID=
# (re)start iperf3's server: one killed client can leave it busy
iperf_server() {
  stop_pid "$IPERF_PID"
  start_bg iperf3-server ip netns exec "$NS_T" iperf3 -s
  IPERF_PID=$LAST_PID
  wait_for 10 n_t sh -c "ss -Hltn 'sport = :5201' | grep -q ."
}
iperf_server || die "iperf3 -s did not start"

meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta command "sudo bench/compare.sh BUILD_DIR$([ "$QUICK" = 1 ] && echo ' --quick')"
meta quick "$QUICK"
meta runs "$RUNS"
meta durations "iperf3 ${TCP_S} s per test; UDP rate steps of ${STEP_S} s (udpprobe rate $SEARCH); idle ping ${IDLE_S} s at 10 ms"
meta cpu "$(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
meta kernel "$(uname -r)"
meta os "Debian $(cat /etc/debian_version 2>/dev/null)"
# Which source the build came from: BENCH_SOURCE overrides; else the
# build's CMake source directory, if it is a git checkout.
src_desc() {
  local src
  src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
  if [ -n "$src" ] && git -C "$src" rev-parse --short HEAD >/dev/null 2>&1; then
    echo "commit $(git -C "$src" rev-parse --short HEAD)$([ -n "$(git -C "$src" status --porcelain -- src 2>/dev/null)" ] && echo ' with uncommitted changes in src/')"
  else
    echo "built from ${src:-an unknown source}"
  fi
}
meta masq "$("$MASQ" --version 2>&1 | head -n 1), ${BENCH_SOURCE:-$(src_desc)}"
meta libs "ngtcp2 $(pkg-config --modversion libngtcp2 2>/dev/null), nghttp3 $(pkg-config --modversion libnghttp3 2>/dev/null), GnuTLS $(pkg-config --modversion gnutls 2>/dev/null)"
meta wireguard "$( (wireguard-go --version 2>/dev/null || echo 'wireguard-go missing') | head -n 1) (Debian package $(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null)), $(dpkg-query -W -f='wireguard-tools ${Version}' wireguard-tools 2>/dev/null)"
meta iperf3 "$(iperf3 --version | head -n 1), TCP congestion control $(n_c sysctl -n net.ipv4.tcp_congestion_control)"
for p in $PROFILES; do meta "profile_$p" "$(profile_title "$p")|$(profile_args "$p")|$(profile_maxloss "$p")"; done
meta systems "$SYSTEMS"

for prof in $PROFILES; do
  profile_args "$prof" >/dev/null || die "unknown profile $prof"
  say "profile $prof: $(profile_title "$prof")"
  if ! impair_up "$prof"; then
    for sys in $SYSTEMS; do rec "$prof" "$sys" 1 fail "the impairment relay did not start"; done
    continue
  fi
  for ((run = 1; run <= RUNS; run++)); do
    for sys in $SYSTEMS; do
      say "  $prof / $sys / run $run"
      read -r la _ </proc/loadavg && LOADS+=("$la")
      run_system "$prof" "$sys" "$run"
      grep -P "^$prof\t$sys\t$run\t" "$RESULTS" | cut -f4,5 | tr '\t\n' '= ' | sed 's/^/    /'; echo
    done
  done
  impair_down "$prof"
done

# Other work on the machine shows in the load average (this run alone
# keeps it near 2).
meta loadavg "$(printf '%s\n' "${LOADS[@]}" | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%s to %s, median %s", v[1], v[NR], v[int((NR + 1) / 2)] }')"
say "writing the report"
if [ "${NO_WRITE:-0}" = 1 ]; then
  python3 "$HERE/compare_report.py" "$RESULTS" "$META"
else
  python3 "$HERE/compare_report.py" "$RESULTS" "$META" "$OUT" || die "cannot write $OUT"
  say "updated $OUT"
fi
say "done in $(($(date +%s) - START_TS)) s"
