#!/usr/bin/env bash
# The layers stay layered: codecs and the session layer do no I/O and read
# no clock, and no layer includes one above it.
set -u
cd "$(dirname "$0")/.."
bad=0
check() { # what, grep regex, dirs...
  local what=$1 re=$2; shift 2
  local hits
  hits=$(grep -nE "$re" "$@" -r --include='*.[ch]' || true)
  if [ -n "$hits" ]; then echo "layering: $what:"; echo "$hits"; bad=1; fi
}
check "socket or event headers in proto/session" \
  '#include <(sys/socket|sys/epoll|netdb|poll|unistd)\.h>' src/proto src/session
check "clock reads in proto/session" '(clock_gettime|gettimeofday|time\(NULL\))' src/proto src/session
check "proto includes a higher layer" '#include "(session|io|server|client|app)/' src/proto
check "session includes a higher layer" '#include "(io|server|client|app)/' src/session
check "io includes a higher layer" '#include "(session|server|client|app)/' src/io
check "roles include the CLI" '#include "app/(gencert|main)' src/server src/client
check "banned string functions" '\b(sprintf|strcpy|strcat|strtok|atoi|sscanf)\(' src
[ "$bad" -eq 0 ] && echo "layering: ok"
exit "$bad"
