#!/usr/bin/env bash
# Conveyor against Redis, side by side on the same machine, in the same run.
#
#   bench/run.sh [-n REQUESTS] [-c CLIENTS] [-r ROUNDS] [-m MEMORY_ITEMS] [--skip-memory]
#                [--skip-durable]
#
# 1. Throughput: redis-benchmark -t ping,lpush,rpop against both servers, -c CLIENTS, with
#    and without pipelining (-P 16).
# 2. ENQUEUE against LPUSH: `ENQUEUE benchq <100 B>` on conveyor vs `LPUSH benchq <100 B>` on
#    Redis (and on conveyor, for reference). Conveyor runs with `--fsync no` (its log still
#    written, never fsynced); Redis runs without persistence and, unless --skip-durable, also
#    with appendfsync always. Durable against durable: bench/durable.sh.
# 3. Memory: MEMORY_ITEMS LPUSHes of 100-byte items into fresh servers; Redis used_memory
#    growth and RSS growth against conveyor RSS growth, in bytes per item.
#
# Each benchmark runs Redis, then conveyor, and the pair is repeated ROUNDS times (default 3);
# the report takes the median of each. Only one server is under load at a time. The load
# average before and after is recorded: a busy machine skews ratios. Results: a table and
# bench/results/latest.md (bench/results is not committed). Ratios are conveyor / redis:
# above 1 means conveyor is faster (throughput) or bigger (memory).
#
# Environment: CONVEYOR_BIN (build/conveyor), REDIS_SERVER (/usr/bin/redis-server),
# REDIS_BENCHMARK (redis-benchmark), BENCH_PIN=1 pins servers to CPU 0 and clients to the
# rest (needs taskset and at least 2 CPUs).

# port_<name> / pid_<name> are set through printf -v by start_redis/start_conveyor (lib.sh).
# shellcheck disable=SC2154,SC2034
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

requests="${BENCH_REQUESTS:-200000}"
clients="${BENCH_CLIENTS:-50}"
memory_items="${BENCH_MEMORY_ITEMS:-1000000}"
rounds="${BENCH_ROUNDS:-3}"
payload_size=100
skip_memory=0
skip_durable=0
conveyor_bin="${CONVEYOR_BIN:-$repo/build/conveyor}"
redis_server="${REDIS_SERVER:-/usr/bin/redis-server}"
redis_benchmark="${REDIS_BENCHMARK:-redis-benchmark}"
redis_cli="${REDIS_CLI:-redis-cli}"
python="${PYTHON:-/usr/bin/python3}"

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) requests="$2"; shift 2 ;;
        -c) clients="$2"; shift 2 ;;
        -m) memory_items="$2"; shift 2 ;;
        -r) rounds="$2"; shift 2 ;;
        --skip-memory) skip_memory=1; shift ;;
        --skip-durable) skip_durable=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
require_executables "$conveyor_bin" "$redis_server"
require_commands "$redis_benchmark" "$redis_cli" "$python"
bench_setup conveyor-bench   # $raw: one file per measurement, read by report.py

rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }

payload="$(head -c "$payload_size" /dev/zero | tr '\0' 'x')"

echo "== machine"
{
    machine_env
    echo "commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo '-dirty')"
    echo "requests=$requests"
    echo "clients=$clients"
    echo "memory_items=$memory_items"
    echo "payload_bytes=$payload_size"
    echo "rounds=$rounds"
    echo "pinned=$([[ ${#server_cpus[@]} -gt 0 ]] && echo yes || echo no)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$raw/machine.env"
sed 's/^/  /' "$raw/machine.env"

echo "== throughput (redis-benchmark -c $clients -n $requests)"
start_redis redis
start_conveyor conveyor --fsync no   # the peer runs without AOF; durable runs: bench/durable.sh
{
    echo "conveyor_version=$("$redis_cli" -h 127.0.0.1 -p "$port_conveyor" INFO server | tr -d '\r' \
        | awk -F: 'tolower($1) ~ /version$/ { print $2; exit }')"
    echo "conveyor_persistence=$(info_field "$port_conveyor" persistence persistence_mode || true)"
} >>"$raw/machine.env"

for round in $(seq "$rounds"); do
    for pipeline in 1 16; do
        for server in redis conveyor; do
            bench "core_P$pipeline" "$server" "$(port_of "$server")" -t ping,lpush,rpop \
                -n "$requests" -P "$pipeline"
            echo
        done
    done
done

echo "== ENQUEUE against LPUSH ($payload_size-byte payload)"
if [[ "$skip_durable" == 0 ]]; then
    start_redis redis_aof --appendonly yes --appendfsync always
fi
port_conveyor_lpush="$port_conveyor"   # conveyor's own LPUSH, for reference
for round in $(seq "$rounds"); do
    for pipeline in 1 16; do
        bench "push_P$pipeline" redis "$port_redis" -n "$requests" -P "$pipeline" LPUSH benchq "$payload"; echo
        if [[ "$skip_durable" == 0 ]]; then
            bench "push_P$pipeline" redis_aof "$port_redis_aof" -n "$requests" -P "$pipeline" LPUSH benchq "$payload"; echo
        fi
        bench "push_P$pipeline" conveyor_lpush "$port_conveyor_lpush" -n "$requests" -P "$pipeline" LPUSH benchq_l "$payload"; echo
        bench "push_P$pipeline" conveyor "$port_conveyor" -n "$requests" -P "$pipeline" ENQUEUE benchq "$payload"; echo
    done
done

if [[ "$skip_memory" == 0 ]]; then
    echo "== memory ($memory_items LPUSHes of $payload_size bytes into fresh servers)"
    stop_server "$pid_conveyor" >/dev/null
    stop_server "$pid_redis" >/dev/null
    if [[ "$skip_durable" == 0 ]]; then stop_server "$pid_redis_aof" >/dev/null; fi
    start_redis redis_mem
    start_conveyor conveyor_mem --fsync no
    for name in redis_mem conveyor_mem; do
        port_var="port_$name"; pid_var="pid_$name"
        sleep 0.5
        rss_before="$(rss_bytes "${!pid_var}")"
        used_before="$(info_field "${!port_var}" memory used_memory || true)"
        "${client_cpus[@]}" "$redis_benchmark" -h 127.0.0.1 -p "${!port_var}" -c "$clients" \
            -P 16 -n "$memory_items" -d "$payload_size" -t lpush -q >/dev/null 2>"$work/$name.bench.err" || {
                echo "redis-benchmark failed against $name" >&2; cat "$work/$name.bench.err" >&2; }
        sleep 1
        rss_after="$(rss_bytes "${!pid_var}")"
        used_after="$(info_field "${!port_var}" memory used_memory || true)"
        items="$("$redis_cli" -h 127.0.0.1 -p "${!port_var}" LLEN mylist)"
        {
            echo "${name}_rss_before=$rss_before"
            echo "${name}_rss_after=$rss_after"
            echo "${name}_used_before=$used_before"
            echo "${name}_used_after=$used_after"
            echo "${name}_items=$items"
        } >>"$raw/memory.env"
        printf '  %-14s items=%s rss %s -> %s bytes, used_memory %s -> %s\n' "$name" "$items" \
            "$rss_before" "$rss_after" "${used_before:-n/a}" "${used_after:-n/a}"
    done
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/machine.env"
mkdir -p "$here/results"
"$python" "$here/report.py" "$raw" "$here/results/latest.md"
echo
echo "written: bench/results/latest.md"
