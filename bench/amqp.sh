#!/usr/bin/env bash
# Conveyor's AMQP 0-9-1 front-end next to rabbitmq-server, side by side on the same machine, in
# the same run.
#
#   bench/amqp.sh [-r ROUNDS] [--fsync always|everysec] [--cpp-count N] [--cpp-big-count N]
#                 [--pika-count N] [--pika-big-count N] [--pika-confirm-count N]
#                 [--celery-tasks N] [--celery-pool prefork|solo] [--big-size BYTES]
#                 [--skip-cpp] [--skip-pika] [--skip-celery] [--rabbitmq-only]
#
# Both brokers are started once, privately, on free loopback ports, with their data under one
# mktemp -d: rabbitmq-server (Debian; its own epmd, node, cookie, mnesia and log dirs, never
# the system service) and `conveyor server --amqp-port P --fsync always` (or everysec). Each
# case runs on RabbitMQ, then on conveyor, repeated ROUNDS (3) times, on fresh queues:
#   {amqp_load (C++, build/bench/amqp_load), pika 1.2 BlockingConnection}
#   x {publish without confirms, publish with confirms, consume + ack}
#   x {100 B, 64 KiB (--big-size)}
# Before each measurement: `sync`, then a wait until the machine is quiet (settle()), so no
# case pays for the background work the case before it left (on the other broker).
# Durable queues, persistent messages (delivery_mode 2), default exchange, prefetch 100, one
# ack per delivery. Counts: amqp_load 100 B --cpp-count (200000), 64 KiB --cpp-big-count
# (5000), window 1000 with confirms; pika --pika-count (20000) / --pika-big-count (2000),
# and --pika-confirm-count (1000) with confirms (pika waits for each confirm: latency-bound).
# Consume drains the queue the no-confirm publish filled. Then the Celery drain:
# --celery-tasks (2000) no-op tasks queued, one `celery worker -P prefork -c 2` started, timed
# from the first task started to the last finished (bench/amqp_celery_tool.py).
# Targets: conveyor >= 2x RabbitMQ on every publish/consume case, Celery drain >= 1x.
#
# Report: printed, and written to bench/results/amqp-latest.md (with the raw JSON in
# bench/results/amqp-<UTC time>/). Ctrl-C or a failure stops both brokers.
# Environment: BUILD_DIR (build), CONVEYOR_BIN ($BUILD_DIR/conveyor), AMQP_LOAD
# ($BUILD_DIR/bench/amqp_load), RABBITMQ_BIN_DIR (/usr/lib/rabbitmq/bin), BENCH_PIN=1 (brokers
# on CPU 0, clients on the others). Needs rabbitmq-server, python3-pika, python3-celery:
# `scripts/install-deps.sh bench` (make bench-amqp runs it).
# shellcheck disable=SC2154,SC2034
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
rounds=3
fsync=always
cpp_count=200000
cpp_big_count=5000
pika_count=20000
pika_big_count=2000
pika_confirm_count=1000
celery_tasks=2000
celery_pool=prefork
big_size=65536
window=1000
prefetch=100
skip_cpp=0 skip_pika=0 skip_celery=0 rabbitmq_only=0
build_dir="${BUILD_DIR:-$repo/build}"
conveyor_src="${CONVEYOR_BIN:-$build_dir/conveyor}"
load_src="${AMQP_LOAD:-$build_dir/bench/amqp_load}"
rabbit_bin="${RABBITMQ_BIN_DIR:-/usr/lib/rabbitmq/bin}"
python="${PYTHON:-/usr/bin/python3}"
case_timeout=600

usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        -r) rounds="$2"; shift 2 ;;
        --fsync) fsync="$2"; shift 2 ;;
        --cpp-count) cpp_count="$2"; shift 2 ;;
        --cpp-big-count) cpp_big_count="$2"; shift 2 ;;
        --pika-count) pika_count="$2"; shift 2 ;;
        --pika-big-count) pika_big_count="$2"; shift 2 ;;
        --pika-confirm-count) pika_confirm_count="$2"; shift 2 ;;
        --celery-tasks) celery_tasks="$2"; shift 2 ;;
        --celery-pool) celery_pool="$2"; shift 2 ;;
        --big-size) big_size="$2"; shift 2 ;;
        --skip-cpp) skip_cpp=1; shift ;;
        --skip-pika) skip_pika=1; shift ;;
        --skip-celery) skip_celery=1; shift ;;
        --rabbitmq-only) rabbitmq_only=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$fsync" == always || "$fsync" == everysec ]] || { echo "--fsync: always or everysec" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
require_executables "$load_src" "$rabbit_bin/rabbitmq-server" "$rabbit_bin/rabbitmqctl"
[[ "$rabbitmq_only" == 1 ]] || require_executables "$conveyor_src"
require_commands "$python" epmd setsid timeout
"$python" -c 'import pika, celery' 2>/dev/null || {
    echo "python3-pika / python3-celery missing: run scripts/install-deps.sh bench" >&2; exit 1; }

bench_setup conveyor-amqp
# Copies, so that a rebuild during the run does not mix binaries.
load_bin="$work/amqp_load"
cp "$load_src" "$load_bin"
if [[ "$rabbitmq_only" == 0 ]]; then
    conveyor_bin="$work/conveyor"
    cp "$conveyor_src" "$conveyor_bin"
fi
brokers=(rabbitmq)
[[ "$rabbitmq_only" == 1 ]] || brokers+=(conveyor)

# --- rabbitmq-server, private ---------------------------------------------------------------
# Its own epmd on a free port (ERL_EPMD_PORT), so that no epmd daemon outlives the run; its
# own HOME, hence its own Erlang cookie for rabbitmqctl; config, plugins, env file, mnesia and
# logs under $work/rabbit. Each runs in its own process group (setsid), killed on exit.
rabbit_pid="" epmd_pid="" rabbit_node="" rabbit_env=() tool_pid=""

start_rabbitmq() {
    local dir="$work/rabbit"
    mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
    local epmd_port dist_port
    port_rabbitmq="$(free_port)"
    epmd_port="$(free_port)"
    dist_port="$(free_port)"
    rabbit_node="rabbit-bench-$port_rabbitmq@localhost"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$port_rabbitmq
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
EOF
    echo '[].' >"$dir/enabled_plugins"
    : >"$dir/rabbitmq-env.conf"
    rabbit_env=(env HOME="$dir/home" ERL_EPMD_PORT="$epmd_port"
        RABBITMQ_NODENAME="$rabbit_node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$port_rabbitmq" RABBITMQ_DIST_PORT="$dist_port"
        RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
        RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_PID_FILE="$dir/rabbit.pid")
    setsid epmd -port "$epmd_port" -address 127.0.0.1 >"$dir/epmd.log" 2>&1 &
    epmd_pid=$!
    local t0=$EPOCHREALTIME
    (cd "$dir" && exec setsid "${server_cpus[@]}" "${rabbit_env[@]}" "$rabbit_bin/rabbitmq-server") \
        >"$work/rabbitmq.log" 2>&1 &
    rabbit_pid=$!
    for _ in $(seq 1200); do
        kill -0 "$rabbit_pid" 2>/dev/null || { echo "rabbitmq-server exited; log:" >&2
            cat "$work/rabbitmq.log" "$dir"/log/*.log >&2 2>/dev/null; exit 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port_rabbitmq") 2>/dev/null; then
            up_rabbitmq="$("$python" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$t0" "$EPOCHREALTIME")"
            return 0
        fi
        sleep 0.1
    done
    echo "rabbitmq-server did not listen on $port_rabbitmq within 120 s" >&2
    exit 1
}

stop_rabbitmq() {
    [[ -n "$rabbit_pid" ]] || return 0
    timeout 60 "${rabbit_env[@]}" "$rabbit_bin/rabbitmqctl" -n "$rabbit_node" stop \
        >>"$work/rabbitmq.log" 2>&1 || true
    kill -TERM -- "-$rabbit_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$rabbit_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$rabbit_pid" 2>/dev/null || true
    rabbit_pid=""
    if [[ -n "$epmd_pid" ]]; then
        kill -TERM -- "-$epmd_pid" 2>/dev/null || true
        epmd_pid=""
    fi
}

amqp_cleanup() {
    local status=$?
    if [[ -n "$tool_pid" ]]; then
        kill -TERM "$tool_pid" 2>/dev/null || true
        wait "$tool_pid" 2>/dev/null || true
    fi
    stop_rabbitmq
    bench_cleanup
    exit "$status"
}
trap amqp_cleanup EXIT

# --- conveyor ---------------------------------------------------------------------------------
start_conveyor_amqp() {
    port_conveyor_amqp="$(free_port)"
    start_conveyor conveyor --fsync "$fsync" --amqp-port "$port_conveyor_amqp"
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port_conveyor_amqp") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "conveyor did not listen on its AMQP port $port_conveyor_amqp; log:" >&2
    cat "$work/conveyor.log" >&2
    exit 1
}

amqp_port() {  # broker
    if [[ "$1" == rabbitmq ]]; then echo "$port_rabbitmq"; else echo "$port_conveyor_amqp"; fi
}

# --- measurements -----------------------------------------------------------------------------
# settle: before a measurement, `sync` writes back what earlier cases left dirty in the page
# cache, then wait (at most 30 s) until the machine is quiet: under 10 % of all CPUs busy over
# 0.3 s. A broker keeps working after a case's clock stops (RabbitMQ moves messages to its
# store, collects garbage and writes unconfirmed messages for seconds after a 64 KiB burst;
# conveyor compacts its log), and that work must not land on the next case, which is the
# other broker's.
cpu_busy_idle() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }
settle() {
    sync
    local waited=0 b0 i0 b1 i1
    while (( waited < 100 )); do
        read -r b0 i0 < <(cpu_busy_idle)
        sleep 0.3
        read -r b1 i1 < <(cpu_busy_idle)
        (( (b1 - b0) * 10 < (b1 - b0) + (i1 - i0) )) && return 0
        waited=$((waited + 1))
    done
    echo "  (the machine did not settle within 30 s; measuring anyway)" >&2
}
# run_tool <file> <broker> <tool> <mode> [args...]: one measurement, JSON in raw/<file>.json;
# a failure is recorded there ({"failed": ...}) and the run goes on.
run_tool() {
    local file="$1" broker="$2" tool="$3" mode="$4"; shift 4
    local port; port="$(amqp_port "$broker")"
    local cmd
    case "$tool" in
        cpp) cmd=("$load_bin" "$mode" --timeout "$case_timeout") ;;
        pika) cmd=("$python" "$here/amqp_pika_tool.py" "$mode" --timeout "$case_timeout") ;;
        celery) cmd=("$python" "$here/amqp_celery_tool.py" "$mode" --timeout "$case_timeout"
                     --pool "$celery_pool" --log "$work/$file.log") ;;
    esac
    local out="$raw/$file.json" status=0
    [[ "$mode" != delete ]] && settle
    # In the background and waited for: `wait` returns at once on Ctrl-C or SIGTERM (a
    # foreground child would delay the trap until it ended), and the clean-up stops the tool.
    timeout --foreground $((case_timeout + 30)) "${client_cpus[@]}" "${cmd[@]}" --port "$port" \
        "$@" >"$out.tmp" 2>"$raw/$file.err" &
    tool_pid=$!
    wait "$tool_pid" || status=$?
    tool_pid=""
    if [[ "$status" == 0 ]]; then
        tail -n 1 "$out.tmp" >"$out"
    else
        "$python" -c 'import json, sys; print(json.dumps({"failed": sys.argv[1]}))' \
            "exit $status: $(tail -n 3 "$raw/$file.err" | tr '\n' ' ')" >"$out"
    fi
    rm -f "$out.tmp"
    [[ "$mode" == delete ]] && { rm -f "$out"; return 0; }
    printf '  %-44s %s\n' "$file" "$("$python" "$here/amqp_report.py" --line "$out")"
}

# one_group <tool> <size label> <bytes> <count> <confirm count>: publish, publish with
# confirms, consume, each on RabbitMQ then conveyor; fresh queues per round.
one_group() {
    local tool="$1" label="$2" bytes="$3" count="$4" confirm_count="$5" broker
    local q="bench-$tool-$label-r$round"
    local extra=()
    [[ "$tool" == cpp ]] && extra=(--window "$window")
    for broker in "${brokers[@]}"; do
        run_tool "${tool}__publish__${label}__${broker}__r$round" "$broker" "$tool" publish \
            --queue "$q" --count "$count" --size "$bytes"
    done
    for broker in "${brokers[@]}"; do
        run_tool "${tool}__confirm__${label}__${broker}__r$round" "$broker" "$tool" publish \
            --queue "$q-confirm" --count "$confirm_count" --size "$bytes" --confirm "${extra[@]}"
    done
    for broker in "${brokers[@]}"; do
        run_tool "${tool}__consume__${label}__${broker}__r$round" "$broker" "$tool" consume \
            --queue "$q" --count "$count" --prefetch "$prefetch"
        run_tool "delete" "$broker" cpp delete --queue "$q-confirm"
    done
}

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel=$(uname -sr)"
    echo "memory_total=$(awk '/^MemTotal:/ { print $2 " kB" }' /proc/meminfo)"
    echo "filesystem=$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "rabbitmq=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown), erlang $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo unknown)"
    echo "pika=$("$python" -c 'import pika; print(pika.__version__)')"
    echo "celery=$("$python" -c 'import celery, kombu, amqp; print(celery.__version__, "kombu", kombu.__version__, "py-amqp", amqp.__version__)')"
    echo "commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ "$rabbitmq_only" == 0 ]]; then
        echo "conveyor_binary=$conveyor_src, built $(date -u -r "$conveyor_src" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$conveyor_bin" | cut -c1-12), server --fsync $fsync"
    else
        echo "conveyor_binary=not run (--rabbitmq-only)"
    fi
    echo "fsync=$fsync"
    echo "counts=amqp_load $cpp_count x 100 B, $cpp_big_count x $big_size B (window $window); pika $pika_count x 100 B, $pika_big_count x $big_size B, $pika_confirm_count with confirms; prefetch $prefetch"
    echo "celery_drain=$celery_tasks no-op tasks, -P $celery_pool$([[ $celery_pool == solo ]] || echo " -c 2")"
    echo "rounds=$rounds"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$raw/machine.env"

echo "== starting rabbitmq-server (erlang takes a few seconds)"
start_rabbitmq
echo "rabbitmq_up_s=$up_rabbitmq" >>"$raw/machine.env"
echo "  $rabbit_node on 127.0.0.1:$port_rabbitmq, up in $up_rabbitmq s"
if [[ "$rabbitmq_only" == 0 ]]; then
    echo "== starting conveyor server --fsync $fsync"
    start_conveyor_amqp
    echo "  conveyor on 127.0.0.1:$port_conveyor_amqp (AMQP), $(port_of conveyor) (RESP)"
fi

for round in $(seq "$rounds"); do
    echo "== round $round of $rounds"
    if [[ "$skip_cpp" == 0 ]]; then
        one_group cpp 100B 100 "$cpp_count" "$cpp_count"
        one_group cpp 64KiB "$big_size" "$cpp_big_count" "$cpp_big_count"
    fi
    if [[ "$skip_pika" == 0 ]]; then
        one_group pika 100B 100 "$pika_count" "$pika_confirm_count"
        one_group pika 64KiB "$big_size" "$pika_big_count" "$pika_confirm_count"
    fi
    if [[ "$skip_celery" == 0 ]]; then
        for broker in "${brokers[@]}"; do
            run_tool "celery__drain__task__${broker}__r$round" "$broker" celery drain \
                --queue "celery-bench-r$round" -n "$celery_tasks"
        done
    fi
done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/machine.env"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$here/results/amqp-$stamp"
cp -r "$raw" "$here/results/amqp-$stamp/raw"
"$python" "$here/amqp_report.py" --raw "$raw" --output "$here/results/amqp-$stamp/report.md"
cp "$here/results/amqp-$stamp/report.md" "$here/results/amqp-latest.md"
echo "written: bench/results/amqp-latest.md (and bench/results/amqp-$stamp/)"
