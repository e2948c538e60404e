#!/usr/bin/env bash
# Cold build cost of the tree, without ccache: `bench/build-time/measure.sh [release|asan|asan-o2]`
# configures a fresh build directory as `make build` (release) or `make test-asan` (asan)
# does (asan-o2: the sanitizer build at RelWithDebInfo's -O2 -g, as make test-asan had it), builds everything with each compile timed by time-compile.sh, and prints the wall
# time, the compilers' total CPU time and the 25 costliest translation units.
# Needs /usr/bin/time (Debian package `time`). Results: bench/README.md "Build time".
set -euo pipefail
kind=${1:-release}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${BUILD_TIME_DIR:-$(mktemp -d /tmp/conveyor-build-time.XXXXXX)}
jobs=${JOBS:-$(nproc)}
mkdir -p "$out"
log=$out/compile-times.txt
: > "$log"
flags=()
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan | asan-o2)
    san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    flags=("-DCMAKE_CXX_FLAGS=$san" "-DCMAKE_EXE_LINKER_FLAGS=$san")
    if [ "$kind" = asan ]; then
      flags+=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-Og -g1")
    else
      flags+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    fi
    ;;
  *) echo "usage: $0 [release|asan|asan-o2]" >&2; exit 2 ;;
esac
cmake -S "$root" -B "$out/build" "${flags[@]}" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$root/bench/build-time/time-compile.sh" >/dev/null
start=$(date +%s)
BUILD_TIME_LOG=$log CCACHE_DISABLE=1 cmake --build "$out/build" -j "$jobs" >"$out/build.log" 2>&1
end=$(date +%s)
units=$(grep -vc ' link$' "$log" || true)
echo "build ($kind, -j $jobs, $(nproc) cores): $((end - start)) s wall, $units translation units"
awk '{ cpu += $1 } END { printf "compiler CPU: %.0f s\n", cpu }' "$log"
echo "costliest translation units (CPU s, wall s, source):"
sort -rn "$log" | grep -v ' link$' | head -n 25 | sed "s|$root/||"
echo "(per-unit log: $log)"
