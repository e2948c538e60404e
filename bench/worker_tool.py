#!/usr/bin/python3
"""Measurements for bench/worker.sh: conveyor worker against a Celery 5 worker.

Subcommands (each prints one JSON object on stdout):
  celery-drain    fill N no-op Celery tasks into redis-server, start `celery worker -P solo`,
                  time from the first task taken to the queue drained
  conveyor-drain  fill N tasks into conveyor (ENQUEUE, pipelined), start `conveyor worker
                  <handler flags>`, time from the first task finished to the N-th
  celery-latency / conveyor-latency
                  a producer paced at RATE tasks/s for SECONDS; each task carries its send
                  time and the handler records when it started: enqueue-to-start latency
  report          the markdown report from the JSON files of a run
Needs Debian's python3 with python3-redis and (for Celery) python3-celery.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE = "benchq"


def spawn(cmd, log_path, env=None):
    log = open(log_path, "ab")
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


def stop(proc, timeout=30.0):
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def celery_env(port):
    env = dict(os.environ)
    env["BENCH_BROKER"] = f"redis://127.0.0.1:{port}/0"
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    return env


def celery_worker_cmd():
    return ["/usr/bin/python3", "-m", "celery", "-A", "celery_bench_app", "worker", "-P", "solo",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", "celery",
            "--loglevel", "WARNING"]


def wait_for(predicate, timeout, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout} s")


def celery_fill(port, n):
    os.environ.update(celery_env(port))
    sys.path.insert(0, HERE)
    import celery_bench_app  # noqa: E402  (needs BENCH_BROKER set first)
    started = time.monotonic()
    with celery_bench_app.app.producer_or_acquire() as producer:
        for _ in range(n):
            celery_bench_app.noop.apply_async(producer=producer)
    return time.monotonic() - started


def cmd_celery_drain(a):
    r = redis.Redis(port=a.port)
    fill_s = celery_fill(a.port, a.n)
    assert r.llen("celery") == a.n, r.llen("celery")
    proc = spawn(celery_worker_cmd(), a.log, env=celery_env(a.port))
    try:
        t_spawn = time.monotonic()
        wait_for(lambda: r.llen("celery") < a.n or proc.poll() is not None, 120)
        if proc.poll() is not None:
            raise SystemExit(f"celery worker exited with {proc.returncode}; see {a.log}")
        t_first = time.monotonic()
        left_at_first = r.llen("celery")
        wait_for(lambda: r.llen("celery") == 0 and r.hlen("unacked") == 0, 3600, 0.02)
        t_done = time.monotonic()
    finally:
        stop(proc)
    taken = a.n - left_at_first
    return {"system": "celery", "mode": "solo pool, redis broker", "tasks": a.n,
            "fill_s": fill_s, "startup_s": t_first - t_spawn,
            "drain_s": t_done - t_first, "rate": (a.n - taken) / (t_done - t_first)}


def cmd_conveyor_drain(a):
    r = redis.Redis(port=a.port)
    started = time.monotonic()
    subprocess.run([a.redis_benchmark, "-h", "127.0.0.1", "-p", str(a.port), "-c", "4", "-P",
                    "100", "-n", str(a.n), "ENQUEUE", QUEUE, "x"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fill_s = time.monotonic() - started
    assert r.execute_command("QLEN", QUEUE) == a.n

    def succeeded():
        return int(r.info("stats")["tasks_succeeded"])

    base = succeeded()
    cmd = [a.conveyor, "worker", "--connect", f"127.0.0.1:{a.port}", "--queue", QUEUE,
           "--status-interval", "3600"] + a.handler.split("\x1f")
    proc = spawn(cmd, a.log)
    try:
        t_spawn = time.monotonic()
        first = wait_for(lambda: (succeeded() - base) or proc.poll() is not None, 120)
        if proc.poll() is not None:
            raise SystemExit(f"conveyor worker exited with {proc.returncode}; see {a.log}")
        t_first = time.monotonic()
        wait_for(lambda: succeeded() - base >= a.n, 3600, 0.01)
        t_done = time.monotonic()
    finally:
        stop(proc)
    return {"system": "conveyor", "mode": a.label, "tasks": a.n, "fill_s": fill_s,
            "startup_s": t_first - t_spawn, "drain_s": t_done - t_first,
            "rate": (a.n - first) / (t_done - t_first)}


def paced(rate, seconds, send):
    """Calls send(i) at `rate` per second for `seconds`; returns how many were sent."""
    n = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(i)
    return n


def percentiles(values):
    values = sorted(values)
    if not values:
        return {}

    def pick(q):
        return values[min(len(values) - 1, int(q * len(values)))]
    return {"count": len(values), "p50_ms": pick(0.50) * 1000, "p99_ms": pick(0.99) * 1000,
            "max_ms": values[-1] * 1000, "mean_ms": statistics.fmean(values) * 1000}


def cmd_celery_latency(a):
    os.environ.update(celery_env(a.port))
    sys.path.insert(0, HERE)
    import celery_bench_app  # noqa: E402
    r = redis.Redis(port=a.port)
    r.delete("bench:latency")
    proc = spawn(celery_worker_cmd(), a.log, env=celery_env(a.port))
    try:
        # Warm-up: the worker is up once a first task ran.
        celery_bench_app.stamp.delay(time.time())
        wait_for(lambda: r.llen("bench:latency") > 0, 120, 0.02)
        r.delete("bench:latency")
        with celery_bench_app.app.producer_or_acquire() as producer:
            n = paced(a.rate, a.seconds,
                      lambda i: celery_bench_app.stamp.apply_async((time.time(),),
                                                                   producer=producer))
        wait_for(lambda: r.llen("bench:latency") >= n, 120, 0.02)
        lat = [float(x) for x in r.lrange("bench:latency", 0, -1)]
    finally:
        stop(proc)
    return {"system": "celery", "mode": "solo pool, redis broker", "rate": a.rate,
            "seconds": a.seconds, **percentiles(lat)}


def cmd_conveyor_latency(a):
    r = redis.Redis(port=a.port)
    handler = f"/usr/bin/python3 {os.path.join(HERE, 'latency_handler.py')}"
    cmd = [a.conveyor, "worker", "--connect", f"127.0.0.1:{a.port}", "--queue", QUEUE,
           "--status-interval", "3600", "--pipe", handler]
    proc = spawn(cmd, a.log)
    try:
        warm = r.execute_command("ENQUEUE", QUEUE, repr(time.time()))
        wait_for(lambda: r.execute_command("RESULT", warm) is not None, 120, 0.02)
        ids = []
        n = paced(a.rate, a.seconds,
                  lambda i: ids.append(r.execute_command("ENQUEUE", QUEUE, repr(time.time()))))
        lat = []
        for task_id in ids:
            res = r.execute_command("RESULT", task_id, "WAIT", "30000")
            if res is None:
                raise SystemExit(f"task {task_id} did not finish")
            lat.append(float(res))
        assert len(lat) == n
    finally:
        stop(proc)
    return {"system": "conveyor", "mode": "--pipe latency_handler.py", "rate": a.rate,
            "seconds": a.seconds, **percentiles(lat)}


def cmd_report(a):
    sys.path.insert(0, HERE)
    from report import machine_table, read_env, write_report
    results = []
    for name in sorted(os.listdir(a.raw)):
        if name.endswith(".json"):
            with open(os.path.join(a.raw, name)) as f:
                results.append(json.load(f))
    machine = read_env(os.path.join(a.raw, "machine.env"))
    drains = [x for x in results if "drain_s" in x]
    lats = [x for x in results if "p50_ms" in x]
    celery = [x["rate"] for x in drains if x["system"] == "celery"]
    celery_rate = statistics.median(celery) if celery else None
    md = ["# conveyor worker vs a Celery 5 worker, side by side", "",
          f"Measured {machine.get('date', '?')} at commit `{machine.get('commit', '?')}` by "
          "`bench/worker.sh`. Each drain: N tasks queued first, then one worker started; "
          "the rate counts from the first task finished (conveyor) or taken (Celery) to the "
          "last, so start-up time is left out (shown apart).", ""]
    md += machine_table(machine, ["nproc", "cpu", "kernel", "memory_total", "redis", "celery",
                                  "conveyor_binary", "tasks", "rounds"])
    md += ["", "## Drain rate (no-op tasks)", "",
           "| system | handler | rounds | rate, median (min-max) tasks/s | start-up s | "
           "ratio to Celery | target |", "|---|---|---|---|---|---|---|"]
    targets = {"--builtin echo": 30, "--pipe examples/handler.py": 10}
    by_mode = {}
    for x in drains:
        by_mode.setdefault((x["system"], x["mode"]), []).append(x)
    for (system, mode), xs in by_mode.items():
        rates = [x["rate"] for x in xs]
        med = statistics.median(rates)
        ratio = "" if system == "celery" or not celery_rate else f"{med / celery_rate:.1f}x"
        target = ""
        need = next((v for k, v in targets.items() if mode.startswith(k)), None)
        if system == "conveyor" and need and celery_rate:
            target = f"≥ {need}x: {'**met**' if med / celery_rate >= need else '**not met**'}"
        elif system == "conveyor":
            target = "reported"
        md.append(f"| {system} | {mode} | {len(xs)} | {med:,.0f} ({min(rates):,.0f}-"
                  f"{max(rates):,.0f}) | {statistics.median(x['startup_s'] for x in xs):.2f} | "
                  f"{ratio} | {target} |")
    md += ["", "## Enqueue-to-start latency at a steady rate", "",
           "| system | handler | rate tasks/s | seconds | tasks | p50 ms | p99 ms | max ms |",
           "|---|---|---|---|---|---|---|---|"]
    for x in lats:
        md.append(f"| {x['system']} | {x['mode']} | {x['rate']} | {x['seconds']} | "
                  f"{x['count']} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['max_ms']:.2f} |")
    write_report(md, a.output)
    return None


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("celery-drain", "conveyor-drain", "celery-latency", "conveyor-latency"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--log", required=True)
        s.add_argument("-n", type=int, default=100000)
        s.add_argument("--rate", type=int, default=1000)
        s.add_argument("--seconds", type=float, default=10.0)
        s.add_argument("--conveyor", default="build/conveyor")
        s.add_argument("--redis-benchmark", default="redis-benchmark")
        s.add_argument("--handler", default="--builtin\x1fecho",
                       help="conveyor worker handler flags, separated by \\x1f")
        s.add_argument("--label", default="--builtin echo")
    s = sub.add_parser("report")
    s.add_argument("--raw", required=True)
    s.add_argument("--output", required=True)
    a = p.parse_args()
    fn = {"celery-drain": cmd_celery_drain, "conveyor-drain": cmd_conveyor_drain,
          "celery-latency": cmd_celery_latency, "conveyor-latency": cmd_conveyor_latency,
          "report": cmd_report}[a.cmd]
    out = fn(a)
    if out is not None:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
