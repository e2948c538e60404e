#!/usr/bin/env bash
# Durable conveyor against durable Redis, side by side on the same machine, in the same run.
#
#   bench/durable.sh [-n REQUESTS] [-c CLIENTS] [-r ROUNDS] [-t RECOVERY_TASKS]
#                    [--churn TASKS] [--live TASKS] [--result-ttl-ms MS|default]
#                    [--skip-throughput] [--skip-recovery] [--skip-churn]
#
# 1. T15 (docs/reliability.md): 50 producers (-c CLIENTS), no pipelining, 100-byte payloads.
#    Redis `appendonly yes`, `appendfsync always`, `save ""` against conveyor `--fsync always`:
#    redis LPUSH vs conveyor ENQUEUE (and conveyor LPUSH); then the same with `everysec`.
#    Every measurement gets a fresh server and data directory; the order of the three
#    alternates between rounds; medians over ROUNDS (default 3) of REQUESTS (200000) each.
# 2. Recovery: RECOVERY_TASKS (1000000) live tasks ENQUEUEd with `-P 100` into conveyor
#    `--fsync no`, SIGTERM, then ROUNDS restarts timed from process start to the first +PONG
#    (polled every ~5 ms); data-dir size. Redis (AOF everysec, LPUSH) the same way, for
#    reference. Target: conveyor < 5 s.
# 3. Churn: conveyor `--fsync no`; ~LIVE (1000) tasks stay queued while TASKS (1000000) go
#    through ENQUEUE + LEASE + ACK (bench/durable_tool.py); `du -sb` of the data dir sampled
#    every second (max and end), INFO persistence, size after stop, restart time. Results
#    of acked tasks are kept --result-ttl-ms (1000 here, so finished tasks become garbage;
#    `default` leaves the server's 1 day, when every acked task is live state for a day).
#
# All data directories are under one temporary directory (TMPDIR, else /tmp), so on one
# filesystem; its type is recorded. The binary is copied first, so a rebuild during the run
# does not mix binaries. Results: a table, bench/results/durable-latest.md, and the report
# with the raw files in bench/results/durable-<UTC time>/ (bench/results is not committed).
#
# Environment: CONVEYOR_BIN (build/conveyor), REDIS_SERVER (/usr/bin/redis-server),
# REDIS_BENCHMARK (redis-benchmark), BENCH_PIN=1 pins servers to CPU 0 and clients to the
# rest (needs taskset and at least 2 CPUs).

# port_<name> / pid_<name> / up_<name> are set through printf -v by start_redis/start_conveyor
# (lib.sh).
# shellcheck disable=SC2154,SC2034
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

requests="${BENCH_REQUESTS:-200000}"
clients="${BENCH_CLIENTS:-50}"
rounds="${BENCH_ROUNDS:-3}"
recovery_tasks=1000000
churn_tasks=1000000
churn_live=1000
churn_result_ttl=1000
payload_size=100
skip_throughput=0
skip_recovery=0
skip_churn=0
conveyor_src="${CONVEYOR_BIN:-$repo/build/conveyor}"
redis_server="${REDIS_SERVER:-/usr/bin/redis-server}"
redis_benchmark="${REDIS_BENCHMARK:-redis-benchmark}"
redis_cli="${REDIS_CLI:-redis-cli}"
python="${PYTHON:-/usr/bin/python3}"

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) requests="$2"; shift 2 ;;
        -c) clients="$2"; shift 2 ;;
        -r) rounds="$2"; shift 2 ;;
        -t|--recovery-tasks) recovery_tasks="$2"; shift 2 ;;
        --churn) churn_tasks="$2"; shift 2 ;;
        --live) churn_live="$2"; shift 2 ;;
        --result-ttl-ms) churn_result_ttl="$2"; shift 2 ;;
        --skip-throughput) skip_throughput=1; shift ;;
        --skip-recovery) skip_recovery=1; shift ;;
        --skip-churn) skip_churn=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
require_executables "$conveyor_src" "$redis_server"
require_commands "$redis_benchmark" "$redis_cli" "$python" du
bench_setup conveyor-durable   # $raw: one file per measurement, read by durable_report.py
mkdir -p "$raw/series"
conveyor_bin="$work/conveyor"
cp "$conveyor_src" "$conveyor_bin"

du_bytes() { du -sb "$1" | cut -f1; }

# save_info <port> <section> <file>: the INFO section as key=value lines.
save_info() {
    "$redis_cli" -h 127.0.0.1 -p "$1" INFO "$2" | tr -d '\r' \
        | awk -F: 'NF >= 2 && $1 !~ /^#/ { k = $1; sub(/^[^:]*:/, ""); print k "=" $0 }' >"$3"
}

payload="$(head -c "$payload_size" /dev/zero | tr '\0' 'x')"

fs_type="$(df -T "$work" | awk 'NR == 2 { print $2 }')"
echo "== machine"
{
    machine_env
    echo "data_fs=$fs_type on $(df -T "$work" | awk 'NR == 2 { print $1 " (" $7 ")" }')"
    echo "data_root=$work"
    echo "commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- server protocol 2>/dev/null || echo '-dirty')"
    echo "conveyor_binary=$(date -u -r "$conveyor_src" +%Y-%m-%dT%H:%M:%SZ) sha256 $(sha256sum "$conveyor_bin" | cut -c1-12)"
    echo "requests=$requests"
    echo "clients=$clients"
    echo "payload_bytes=$payload_size"
    echo "rounds=$rounds"
    echo "recovery_tasks=$recovery_tasks"
    echo "churn_tasks_arg=$churn_tasks"
    echo "churn_live_arg=$churn_live"
    echo "churn_result_ttl_ms=$churn_result_ttl"
    echo "pinned=$([[ ${#server_cpus[@]} -gt 0 ]] && echo yes || echo no)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$raw/machine.env"
sed 's/^/  /' "$raw/machine.env"
[[ "$fs_type" == tmpfs ]] && echo "  WARNING: $work is on tmpfs: fsync costs nothing there" >&2

# --- 1. T15 --------------------------------------------------------------------------------
# measure <mode> <which>: one fresh server, one redis-benchmark, stop, data-dir size, remove.
measure() {
    local mode="$1" which="$2" name="${2}_$1" du
    local port_var="port_$name" pid_var="pid_$name"
    case "$which" in
        redis)
            start_redis "$name" --appendonly yes --appendfsync "$mode"
            bench "t15_$mode" "$which" "${!port_var}" -n "$requests" LPUSH benchq "$payload" ;;
        conveyor_enqueue|conveyor_lpush)
            rm -rf "$work/$name-data"
            start_conveyor "$name" --fsync "$mode"
            local verb=LPUSH
            [[ "$which" == conveyor_enqueue ]] && verb=ENQUEUE
            bench "t15_$mode" "$which" "${!port_var}" -n "$requests" "$verb" benchq "$payload"
            save_info "${!port_var}" persistence "$raw/t15_${mode}__${which}__${round}.persistence" ;;
    esac
    stop_server "${!pid_var}" >/dev/null
    if [[ "$which" == redis ]]; then du="$(du_bytes "$work/$name-dir")"; else du="$(du_bytes "$work/$name-data")"; fi
    echo "disk=${du}B"
    echo "t15_${mode}_${which}_${round}_du=$du" >>"$raw/t15_disk.env"
    rm -rf "$work/$name-dir" "$work/$name-data"
}

if [[ "$skip_throughput" == 0 ]]; then
    echo "== T15: 100-byte pushes, -c $clients, no pipelining, -n $requests; fresh server each"
    for round in $(seq "$rounds"); do
        for mode in always everysec; do
            order=(redis conveyor_enqueue conveyor_lpush)
            if (( round % 2 == 0 )); then order=(conveyor_lpush conveyor_enqueue redis); fi
            for which in "${order[@]}"; do
                measure "$mode" "$which"
            done
        done
    done
fi

# --- 2. Recovery ---------------------------------------------------------------------------
if [[ "$skip_recovery" == 0 ]]; then
    echo "== recovery: $recovery_tasks live 100-byte tasks (filled with -P 100), $rounds restarts"
    {
        start_conveyor recovery --fsync no
        t0=$EPOCHREALTIME
        "${client_cpus[@]}" "$redis_benchmark" -h 127.0.0.1 -p "$port_recovery" -c "$clients" \
            -P 100 -n "$recovery_tasks" -q ENQUEUE benchq "$payload" >/dev/null 2>"$work/fill.err" \
            || { echo "fill failed" >&2; cat "$work/fill.err" >&2; exit 1; }
        fill_s="$("$python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$EPOCHREALTIME")"
        qlen="$("$redis_cli" -h 127.0.0.1 -p "$port_recovery" QLEN benchq)"
        save_info "$port_recovery" persistence "$raw/recovery_fill.persistence"
        echo "conveyor_fill_seconds=$fill_s"
        echo "conveyor_tasks=$qlen"
        echo "conveyor_shutdown_seconds=$(stop_server "$pid_recovery")"
        echo "conveyor_du=$(du_bytes "$work/recovery-data")"
        echo "conveyor_files=$(find "$work/recovery-data" -type f | wc -l)"
    } >>"$raw/recovery.env"
    sed 's/^/  /' "$raw/recovery.env"
    for i in $(seq "$rounds"); do
        start_conveyor recovery
        qlen="$("$redis_cli" -h 127.0.0.1 -p "$port_recovery" QLEN benchq)"
        save_info "$port_recovery" persistence "$raw/recovery_restart_$i.persistence"
        stop_s="$(stop_server "$pid_recovery")"
        du="$(du_bytes "$work/recovery-data")"
        printf '  conveyor restart %s: %s s to PONG, QLEN %s, data dir %s bytes\n' "$i" "$up_recovery" "$qlen" "$du"
        {
            echo "conveyor_restart_${i}_seconds=$up_recovery"
            echo "conveyor_restart_${i}_tasks=$qlen"
            echo "conveyor_restart_${i}_du_after=$du"
            echo "conveyor_restart_${i}_files_after=$(find "$work/recovery-data" -type f | wc -l)"
            echo "conveyor_restart_${i}_shutdown_seconds=$stop_s"
        } >>"$raw/recovery.env"
    done
    grep -h 'recovered' "$work/recovery.log" | sed 's/^/  log: /' | tee "$raw/recovery_log_lines.txt"
    rm -rf "$work/recovery-data"

    # Redis for reference: AOF everysec (the fill is pipelined; the mode does not matter for
    # loading). Auto AOF rewrite stays on, as by default: the AOF may be an RDB base + tail.
    start_redis redis_recovery --appendonly yes --appendfsync everysec
    t0=$EPOCHREALTIME
    "${client_cpus[@]}" "$redis_benchmark" -h 127.0.0.1 -p "$port_redis_recovery" -c "$clients" \
        -P 100 -n "$recovery_tasks" -q LPUSH benchq "$payload" >/dev/null 2>"$work/fill.err" \
        || { echo "redis fill failed" >&2; cat "$work/fill.err" >&2; exit 1; }
    {
        echo "redis_fill_seconds=$("$python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$EPOCHREALTIME")"
        echo "redis_tasks=$("$redis_cli" -h 127.0.0.1 -p "$port_redis_recovery" LLEN benchq)"
        # Let a rewrite started by the fill finish before the shutdown.
        for _ in $(seq 600); do
            [[ "$(info_field "$port_redis_recovery" persistence aof_rewrite_in_progress)" == 0 ]] && break
            sleep 0.1
        done
        echo "redis_shutdown_seconds=$(stop_server "$pid_redis_recovery")"
        echo "redis_du=$(du_bytes "$work/redis_recovery-dir")"
    } >>"$raw/recovery.env"
    for i in $(seq "$rounds"); do
        start_redis redis_recovery --appendonly yes --appendfsync everysec
        n="$("$redis_cli" -h 127.0.0.1 -p "$port_redis_recovery" LLEN benchq)"
        stop_s="$(stop_server "$pid_redis_recovery")"
        printf '  redis restart %s: %s s to PONG, LLEN %s\n' "$i" "$up_redis_recovery" "$n"
        {
            echo "redis_restart_${i}_seconds=$up_redis_recovery"
            echo "redis_restart_${i}_tasks=$n"
            echo "redis_restart_${i}_shutdown_seconds=$stop_s"
        } >>"$raw/recovery.env"
    done
    ls -l "$work/redis_recovery-dir"/* "$work/redis_recovery-dir"/appendonlydir/* >"$raw/redis_recovery_files.txt" 2>&1 || true
    rm -rf "$work/redis_recovery-dir"
fi

# --- 3. Churn ------------------------------------------------------------------------------
if [[ "$skip_churn" == 0 ]]; then
    echo "== churn: $churn_tasks tasks through ENQUEUE + LEASE + ACK, ~$churn_live live, --fsync no"
    ttl_args=()
    [[ "$churn_result_ttl" != default ]] && ttl_args=(--result-ttl-ms "$churn_result_ttl")
    start_conveyor churn --fsync no "${ttl_args[@]}"
    "${client_cpus[@]}" "$python" "$bench_tool" churn --port "$port_churn" --data-dir "$work/churn-data" \
        --tasks "$churn_tasks" --live "$churn_live" --payload-size "$payload_size" \
        --series "$raw/series/churn.csv" >"$raw/churn.env"
    sleep 2   # anything the server does in the background after the load (compaction, expiry)
    {
        echo "churn_du_end_plus_2s=$(du_bytes "$work/churn-data")"
        echo "churn_live_end_plus_2s=$(info_field "$port_churn" stats tasks_live)"
        echo "churn_rss_end=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid_churn/status")"
    } >>"$raw/churn.env"
    save_info "$port_churn" persistence "$raw/churn_end.persistence"
    save_info "$port_churn" stats "$raw/churn_end.stats"
    {
        echo "churn_shutdown_seconds=$(stop_server "$pid_churn")"
        echo "churn_du_after_stop=$(du_bytes "$work/churn-data")"
        echo "churn_files_after_stop=$(find "$work/churn-data" -type f | wc -l)"
    } >>"$raw/churn.env"
    ls -l "$work/churn-data" >"$raw/churn_files.txt"
    start_conveyor churn --fsync no "${ttl_args[@]}"
    {
        echo "churn_restart_seconds=$up_churn"
        echo "churn_restart_qlen=$("$redis_cli" -h 127.0.0.1 -p "$port_churn" QLEN churnq)"
        echo "churn_restart_live=$(info_field "$port_churn" stats tasks_live)"
    } >>"$raw/churn.env"
    stop_server "$pid_churn" >/dev/null
    grep -h 'recovered' "$work/churn.log" | sed 's/^/  log: /' | tee -a "$raw/churn_log_lines.txt" || true
    sed 's/^/  /' "$raw/churn.env"
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/machine.env"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$here/results/durable-$stamp"
cp -r "$raw" "$here/results/durable-$stamp/raw"
"$python" "$here/durable_report.py" "$raw" "$here/results/durable-$stamp/report.md"
cp "$here/results/durable-$stamp/report.md" "$here/results/durable-latest.md"
echo
echo "written: bench/results/durable-latest.md (and bench/results/durable-$stamp/: report, raw files)"
