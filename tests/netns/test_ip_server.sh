#!/bin/bash
# The CONNECT-IP server (RFC 9484) against h3probe's CONNECT-IP cases
# (tests/tools/h3probe/): addresses and routes, ADDRESS_REQUEST,
# scoping in both directions, anti-spoofing and client-to-client ICMP,
# malformed scopes and capsules -- each aborting only its own stream. The
# server routes (no NAT here: the target namespace routes the pools back
# to it), so this also checks the gateway's forwarding path end to end.
TEST_NAME=ip_server
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_probe

POOL4=10.89.0.0/24 POOL6=fd6d:6173:7100::/64
topo_up
n_s sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
n_t ip route add $POOL4 via $SI4
n_t ip -6 route add $POOL6 via $SI6
ns_etc "$NS_S" hosts "$T4 target.test"
ns_etc "$NS_C" hosts "$T4 target.test"
start_server --pool4 $POOL4 --pool6 $POOL6
wait_log_fixed "$TMP/server.log" "CONNECT-IP gateway"


probe ip-ok --target "$T4:7"
probe ip-ok --target "[$T6]:7"
probe ip-request
probe ip-spoof
probe ip-scope --target "$T4:7"
probe ip-scope --target "[$T6]:7"
# A name: the server resolves it off the loop and scopes to its address.
probe ip-scope --target "target.test:7"
probe ip-bad-scope
probe ip-bad-capsule
probe ip-two
# After all that, every lease is back in the pool and the gateway works.
probe ip-ok --target "$T4:7"

probe_report
finish
