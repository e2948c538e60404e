# Shared by bench/run.sh and bench/durable.sh (sourced, not run). The caller sets
# conveyor_bin, redis_server, redis_benchmark, redis_cli, python, clients, and `round` inside
# its measurement loops.
#
# port_<name> / pid_<name> / up_<name> are set through printf -v by start_redis/start_conveyor.
# shellcheck shell=bash disable=SC2154,SC2034

bench_tool="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/durable_tool.py"

# require_executables <path...>; require_commands <name...>: exit 1 naming what is missing.
require_executables() {
    local t
    for t in "$@"; do
        [[ -x "$t" ]] || { echo "not executable: $t (run 'make build' first?)" >&2; exit 1; }
    done
}
require_commands() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
    done
}

# bench_setup <prefix>: a temporary work directory ($work, with $raw for the measurements),
# servers stopped and the directory removed on exit, and BENCH_PIN=1 pinning (servers on
# CPU 0, clients on the rest; needs taskset and at least 2 CPUs).
bench_setup() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    raw="$work/raw"
    mkdir -p "$raw"
    server_pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    server_cpus=()
    client_cpus=()
    if [[ "${BENCH_PIN:-0}" == 1 ]] && command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
        server_cpus=(taskset -c 0)
        client_cpus=(taskset -c "1-$(( $(nproc) - 1 ))")
    fi
}

bench_cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${server_pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

free_port() {
    "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_up <port> <pid> <name> <t0>: seconds from t0 to the first +PONG (stdout), polled
# every ~5 ms; on failure the server's log and exit 1.
wait_up() {
    if ! "$python" "$bench_tool" wait-ping --port "$1" --pid "$2" --t0 "$4"; then
        echo "$3 did not come up; log:" >&2
        cat "$work/$3.log" >&2
        exit 1
    fi
}

# start_server <name> <command...>: runs it with --port <free port> appended, log in
# $work/<name>.log; sets port_<name>, pid_<name> and up_<name> (seconds to the first PONG).
start_server() {
    local name="$1"; shift
    local port; port="$(free_port)"
    local t0=$EPOCHREALTIME
    "${server_cpus[@]}" "$@" --port "$port" >>"$work/$name.log" 2>&1 &
    local pid=$!
    server_pids+=("$pid")
    local up; up="$(wait_up "$port" "$pid" "$name" "$t0")"
    printf -v "up_$name" '%s' "$up"
    printf -v "port_$name" '%s' "$port"
    printf -v "pid_$name" '%s' "$pid"
}

# start_redis <name> [extra redis-server args...]: dir $work/<name>-dir, no RDB snapshots.
start_redis() {
    local name="$1"; shift
    mkdir -p "$work/$name-dir"
    start_server "$name" "$redis_server" --bind 127.0.0.1 --save '' --daemonize no \
        --dir "$work/$name-dir" "$@"
}

# start_conveyor <name> [extra conveyor server args...]: data dir $work/<name>-data (kept if
# it exists: a restart).
start_conveyor() {
    local name="$1"; shift
    mkdir -p "$work/$name-data"
    # No AMQP listener unless asked for (its default port 5673 may be taken).
    local amqp=(--amqp-port 0)
    case " $* " in *" --amqp-port "*) amqp=() ;; esac
    start_server "$name" "$conveyor_bin" server --bind 127.0.0.1 --data-dir "$work/$name-data" \
        "${amqp[@]}" "$@"
}

# stop_server <pid>: SIGTERM, wait (up to 120 s) for the exit; prints the seconds it took.
stop_server() {
    local t0=$EPOCHREALTIME
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 12000); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.01
    done
    if kill -0 "$1" 2>/dev/null; then
        echo "pid $1 still running 120 s after SIGTERM: killed" >&2
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
    "$python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" \
        "$t0" "$EPOCHREALTIME"
}

port_of() {  # name
    local v="port_$1"
    echo "${!v}"
}

info_field() {  # port section field
    "$redis_cli" -h 127.0.0.1 -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}

# bench <label> <name> <port> <redis-benchmark args...>: CSV saved as
# raw/<label>__<name>__<round>.csv; prints the rates on one line (no newline at the end).
bench() {
    local label="$1" name="$2" port="$3"; shift 3
    local out="$raw/${label}__${name}__${round}.csv"
    printf '  %-12s round %s  %-17s ' "$label" "$round" "$name"
    if ! "${client_cpus[@]}" "$redis_benchmark" -h 127.0.0.1 -p "$port" -c "$clients" \
            --csv "$@" >"$out" 2>"$out.err"; then
        echo "FAILED (see below)"
        cat "$out.err" >&2
        echo "redis-benchmark failed" >"$out.failed"
        return 0
    fi
    tail -n +2 "$out" | awk -F'","' '{ gsub(/"/, "", $1); gsub(/"/, "", $2); split($1, t, " ")
                                       printf "%s=%s rps  ", t[1], $2 }'
}

# machine_env: the key=value lines both reports start with.
machine_env() {
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel=$(uname -sr)"
    echo "memory_total=$(awk '/^MemTotal:/ { print $2 " kB" }' /proc/meminfo)"
    echo "redis=$("$redis_server" --version | head -1)"
    echo "redis_benchmark=$("$redis_benchmark" --version 2>/dev/null | head -1 || echo unknown)"
}
