#!/usr/bin/env bash
# Runs every test of masq: unit tests, the network-namespace topology tests
# and brief fuzzing, in a normal build and again under ASan + UBSan.
# Needs root (packages, namespaces). Prints one summary line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test: run as root (namespaces, packages): sudo $0" >&2; exit 1; }
scripts/setup.sh

JOBS=$(nproc)
total_pass=0 total_fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

build() { # dir, cmake args...
  local dir=$1; shift
  echo "== build $dir ($*)"
  cmake -S . -B "$dir" -DMASQ_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS" >/dev/null
}

run_ctest() { # dir, label regex
  local dir=$1 labels=$2 rc=0
  echo "== ctest $dir ($labels)"
  ctest --test-dir "$dir" -L "$labels" --output-on-failure -j 1 2>&1 | tee "$log" || rc=1
  local line p t
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then total_fail=$((total_fail + 1)); return; fi
  t=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  p=$(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$line")
  total_pass=$((total_pass + t - p)); total_fail=$((total_fail + p))
  [ "$rc" -eq 0 ] || [ "$p" -gt 0 ] || total_fail=$((total_fail + 1))
}

build build
run_ctest build 'unit|netns'
build build-san -DMASQ_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  run_ctest build-san 'unit|netns'
build build-fuzz -DCMAKE_C_COMPILER=clang -DMASQ_FUZZ=ON -DMASQ_SANITIZE=ON \
  -DMASQ_FUZZ_SECONDS="${MASQ_FUZZ_SECONDS:-15}"
run_ctest build-fuzz fuzz

echo "masq: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
