#!/bin/bash
# Bad and borderline input against the server, one h3probe case at a time
# (tests/tools/h3probe/): refused requests must get the right status and
# Proxy-Status, malformed capsules and datagrams the right stream or
# connection error, and none of it may take the server down, corrupt it
# (sanitizer reports in its log) or leak (LeakSanitizer at exit).
TEST_NAME=bad_input
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_probe

topo_up
start_server
start_echo "$NS_T" 7

for c in ok no-token wrong-token auth-header wrong-protocol no-capsule-protocol bad-port \
  bad-host wrong-path missing-pseudo malformed-capsule unknown-capsule unknown-context \
  bad-datagram ok oversize many early-fin capsule-fallback wrong-method; do
  probe "$c" --target "$T4:7"
done
# The policy denies private ranges and the server's own addresses.
for t in 10.0.0.1:53 "$SI4:7" 127.0.0.1:7 "[::1]:7" "[$SI6]:7"; do
  probe denied-target --target "$t"
done
probe ok --target "[$T6]:7"
probe ok --target "$T4:7"

# finish stops the server with SIGTERM (it must exit 0) and scans every
# log, the probe's included, for sanitizer reports.
probe_report
finish
