#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang-14 in their own build directory
# ($FUZZ_DIR, default build-fuzz) and runs each for a given time against its committed seeds
# and dictionary (docs/fuzzing.md). New corpus entries go to $FUZZ_DIR/corpus/<name>/, crash
# inputs to $FUZZ_DIR/artifacts/<name>/, output to $FUZZ_DIR/logs/<name>.log; the committed
# corpus is only read.
#
#   scripts/fuzz.sh [--seconds N] [--jobs N] [--build-only | --no-build] [target ...]
#
# Exits non-zero when a build fails or any target finds a crash, a sanitizer report, a leak,
# a time-out or a failed check; the failing input is named with the command replaying it.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=$(nproc)
build=yes
run=yes
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build-only) run=no; shift ;;
    --no-build) build=no; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

fuzz_dir=${FUZZ_DIR:-build-fuzz}
all_targets=(fuzz_resp_request fuzz_resp_reply fuzz_amqp_frame fuzz_record_decode fuzz_commands)
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

# Dictionary of each target (none for the binary record codec).
dict_of() {
  case "$1" in
    fuzz_resp_request|fuzz_resp_reply) echo tests/fuzz/resp.dict ;;
    fuzz_commands) echo tests/fuzz/commands.dict ;;
    fuzz_amqp_frame) echo tests/fuzz/amqp.dict ;;
    *) echo "" ;;
  esac
}

if [ "$build" = yes ]; then
  # Debug with -O1: assertions stay on, and the instrumented build stays quick to compile.
  # The build's output goes to a log, shown only when it fails.
  mkdir -p "$fuzz_dir"
  build_log=$fuzz_dir/build.log
  echo "fuzz: building ${targets[*]} in $fuzz_dir (clang++-14; log $build_log)"
  if ! { cmake -S . -B "$fuzz_dir" -DCONVEYOR_FUZZ=ON -DCONVEYOR_BUILD_TESTS=OFF \
           -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug \
           -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" &&
         cmake --build "$fuzz_dir" -j "$jobs" --target "${targets[@]}"; } >"$build_log" 2>&1; then
    grep -E -A8 'error:' "$build_log" | head -n 60 || true
    tail -n 15 "$build_log"
    echo "fuzz: build FAILED; log $build_log"
    exit 1
  fi
fi
[ "$run" = yes ] || exit 0

symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer
[ -x "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer UBSAN_SYMBOLIZER_PATH=$symbolizer
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# One target: runs for $seconds, prints one line, and the report if it failed.
run_target() {
  local target=$1 name=${1#fuzz_}
  local bin=$fuzz_dir/tests/fuzz/$target seeds=tests/fuzz/corpus/$name
  local corpus=$fuzz_dir/corpus/$name artifacts=$fuzz_dir/artifacts/$name/
  local log=$fuzz_dir/logs/$name.log dict
  dict=$(dict_of "$target")
  mkdir -p "$corpus" "$artifacts" "$fuzz_dir/logs"
  local args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$artifacts")
  [ -n "$dict" ] && args+=(-dict="$dict")
  if [ ! -x "$bin" ]; then
    echo "fuzz $target: FAILED, $bin is not built (run scripts/fuzz.sh --build-only)"
    return 1
  fi
  "$bin" "${args[@]}" "$corpus" "$seeds" >"$log" 2>&1
  local status=$?
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  if [ $status -eq 0 ]; then
    echo "fuzz $target: ok, ${runs:-?} runs in ${seconds} s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) files"
    return 0
  fi
  echo "fuzz $target: FAILED (exit $status) after ${runs:-?} runs; log $log"
  grep -E -A40 '^==[0-9]+==ERROR|runtime error|deadly signal|Test unit written|ERROR: libFuzzer' \
    "$log" | head -n 60
  local crash
  crash=$(grep -o "Test unit written to .*" "$log" | tail -n 1 | sed 's/Test unit written to //')
  [ -n "$crash" ] && echo "replay: $bin $crash"
  return 1
}

failed=0
running=0
for target in "${targets[@]}"; do
  run_target "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit $failed
