#!/usr/bin/env bash
# conveyor worker against a Celery 5 worker, side by side on the same machine, in the same run.
#
#   bench/worker.sh [-n TASKS] [-r ROUNDS] [--exec-tasks N] [--rate R] [--seconds S]
#
# 1. Drain: TASKS (100000) no-op tasks are queued first, then one worker is started and timed
#    from the first task done to the last (start-up shown apart):
#      Celery 5.2 (Debian python3-celery), `-P solo`, broker redis-server (no persistence);
#      conveyor worker --builtin echo, --pipe 'python3 examples/handler.py', and --exec cat
#      (a process per task; --exec-tasks, default 10000) against `conveyor server --fsync no`
#      (CONVEYOR_FSYNC to change): with default flags (--concurrency = cores, --prefetch 1),
#      and builtin and pipe again with --prefetch 20 (Celery's solo worker prefetches 4).
#    Targets: --builtin echo ≥ 30× Celery's rate, --pipe ≥ 10×, --exec reported as is.
# 2. Latency: a producer paced at RATE (1000) tasks/s for SECONDS (10); each task carries its
#    send time, the handler (a Celery task / a --pipe Python handler) records its start:
#    enqueue-to-start p50/p99.
# Every measurement gets a fresh server. Results: bench/results/worker-latest.md and
# bench/results/worker-<UTC time>/ (report + raw JSON).
#
# Environment: CONVEYOR_BIN (build/conveyor), REDIS_SERVER, REDIS_BENCHMARK, CONVEYOR_FSYNC.
# Needs python3-celery: `scripts/install-deps.sh bench` (make bench-worker runs it).
# shellcheck disable=SC2154,SC2034
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tasks=100000
exec_tasks=10000
rounds=3
rate=1000
seconds=10
conveyor_src="${CONVEYOR_BIN:-$repo/build/conveyor}"
conveyor_fsync="${CONVEYOR_FSYNC:-no}"
redis_server="${REDIS_SERVER:-/usr/bin/redis-server}"
redis_benchmark="${REDIS_BENCHMARK:-redis-benchmark}"
redis_cli="${REDIS_CLI:-redis-cli}"
python="${PYTHON:-/usr/bin/python3}"
clients=1

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) tasks="$2"; shift 2 ;;
        -r) rounds="$2"; shift 2 ;;
        --exec-tasks) exec_tasks="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
require_executables "$conveyor_src" "$redis_server"
require_commands "$redis_benchmark" "$redis_cli" "$python"
"$python" -c 'import celery' 2>/dev/null || {
    echo "python3-celery is missing: run scripts/install-deps.sh bench" >&2; exit 1; }
bench_setup conveyor-worker
conveyor_bin="$work/conveyor"
cp "$conveyor_src" "$conveyor_bin"
tool=("$python" "$here/worker_tool.py")

{
    machine_env
    echo "celery=$("$python" -c 'import celery; print(celery.__version__)')"
    echo "commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "conveyor_binary=$(date -u -r "$conveyor_src" +%Y-%m-%dT%H:%M:%SZ) sha256 $(sha256sum "$conveyor_bin" | cut -c1-12), server --fsync $conveyor_fsync"
    echo "tasks=$tasks (exec: $exec_tasks)"
    echo "rounds=$rounds"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$raw/machine.env"

# measure <file> <server kind> <tool subcommand> [args...]: a fresh server, one measurement.
measure() {
    local file="$1" kind="$2"; shift 2
    local name="${kind}_$RANDOM"
    if [[ "$kind" == redis ]]; then
        start_redis "$name"
    else
        start_conveyor "$name" --fsync "$conveyor_fsync"
    fi
    local port; port="$(port_of "$name")"
    local pid_var="pid_$name"
    "${tool[@]}" "$@" --port "$port" --log "$work/$name-worker.log" \
        --conveyor "$conveyor_bin" --redis-benchmark "$redis_benchmark" >"$raw/$file.json"
    stop_server "${!pid_var}" >/dev/null
    echo "  $file: $(cat "$raw/$file.json")"
}

echo "== drain: $tasks no-op tasks, $rounds rounds"
for round in $(seq "$rounds"); do
    measure "drain_celery_$round" redis celery-drain -n "$tasks"
    measure "drain_builtin_$round" conveyor conveyor-drain -n "$tasks" \
        --handler=$'--builtin\x1fecho' --label "--builtin echo"
    measure "drain_pipe_$round" conveyor conveyor-drain -n "$tasks" \
        --handler=$'--pipe\x1f'"$python $repo/examples/handler.py" --label "--pipe examples/handler.py"
    measure "drain_builtin_prefetch_$round" conveyor conveyor-drain -n "$tasks" \
        --handler=$'--builtin\x1fecho\x1f--prefetch\x1f20' --label "--builtin echo --prefetch 20"
    measure "drain_pipe_prefetch_$round" conveyor conveyor-drain -n "$tasks" \
        --handler=$'--pipe\x1f'"$python $repo/examples/handler.py"$'\x1f--prefetch\x1f20' \
        --label "--pipe examples/handler.py --prefetch 20"
    measure "drain_exec_$round" conveyor conveyor-drain -n "$exec_tasks" \
        --handler=$'--exec\x1fcat' --label "--exec cat"
done

echo "== latency: $rate tasks/s for $seconds s"
measure latency_celery redis celery-latency --rate "$rate" --seconds "$seconds"
measure latency_conveyor conveyor conveyor-latency --rate "$rate" --seconds "$seconds"

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/machine.env"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$here/results/worker-$stamp"
cp -r "$raw" "$here/results/worker-$stamp/raw"
"${tool[@]}" report --raw "$raw" --output "$here/results/worker-$stamp/report.md"
cp "$here/results/worker-$stamp/report.md" "$here/results/worker-latest.md"
echo "written: bench/results/worker-latest.md (and bench/results/worker-$stamp/)"
