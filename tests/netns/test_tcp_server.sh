#!/bin/bash
# Plain CONNECT (RFC 9114 §4.4) on the server, driven by h3probe: bytes
# relayed both ways with FIN, a refused, a silent and a denied target,
# malformed requests, a target reset (H3_CONNECT_ERROR), and
# backpressure: a target that never reads must not grow the server.
TEST_NAME=tcp_server
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_probe

topo_up
blackhole_tcp 7003 # the silent target
start_tcp_targets
start_server --connect-timeout 1


rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

probe tcp-echo --target "$T4:7000"
probe tcp-echo --target "[$T6]:7000"
probe tcp-refused --target "$T4:7002"
probe tcp-timeout --target "$T4:7003"
probe tcp-denied --target "10.0.0.1:80"
probe tcp-denied --target "127.0.0.1:22"
probe tcp-bad --target "$T4:7000"
probe tcp-reset --target "$T4:7001"
before=$(rss_kb)
probe tcp-stall --target "$T4:7004"
after=$(rss_kb)
pretty "server RSS ${before} kB before the stalled upload, ${after} kB after"
# The stalled flow may hold one stream window plus socket buffers.
[ $((after - before)) -lt 65536 ] || FAILED+=("server RSS grew by $((after - before)) kB")

probe_report
finish
