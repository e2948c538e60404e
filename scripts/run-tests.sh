#!/usr/bin/env bash
# Runs every test through ctest and prints ctest's summary line last
# ("100% tests passed, 0 tests failed out of N"), keeping ctest's exit status.
set -uo pipefail
build_dir=${1:-build}
jobs=${2:-$(nproc)}
shift 2 2>/dev/null || true
log=$(mktemp)
trap 'rm -f "$log"' EXIT
(cd "$build_dir" && ctest --output-on-failure -j "$jobs" --timeout 600 "$@") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo
grep -E '^[0-9]+% tests passed' "$log" | tail -n 1
exit "$status"
