#!/usr/bin/python3
"""Celery drain over AMQP for bench/amqp.sh (the same for RabbitMQ and conveyor).

  amqp_celery_tool.py drain --port P --queue Q -n N --log FILE

Queues N no-op tasks (bench/celery_amqp_app.py, results ignored) through Celery's own producer
(kombu over py-amqp, no publisher confirms), waits until a passive queue_declare (pika) counts
all N, then starts one worker: `celery worker -P solo` (one process, prefetch 4: Celery's
default multiplier), without gossip, mingle and heartbeat, as bench/worker.sh runs it. The
worker's task hooks time the drain from the first task started to the N-th finished; start-up
(spawn to first task) is reported apart. One JSON line on stdout.
Needs Debian's python3-celery and python3-pika.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import pika

HERE = os.path.dirname(os.path.abspath(__file__))


def worker_env(a, done_file):
    env = dict(os.environ)
    env.update(BENCH_BROKER=f"amqp://guest:guest@127.0.0.1:{a.port}//", BENCH_QUEUE=a.queue,
               BENCH_TASKS=str(a.n), BENCH_DONE_FILE=done_file,
               PYTHONPATH=HERE + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def queued(port, queue):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    try:
        return conn.channel().queue_declare(queue, durable=True, passive=True).method.message_count
    finally:
        conn.close()


def fill(a, env):
    os.environ.update(env)
    sys.path.insert(0, HERE)
    import celery_amqp_app  # noqa: E402  (reads BENCH_BROKER and BENCH_QUEUE on import)
    started = time.monotonic()
    with celery_amqp_app.app.producer_or_acquire() as producer:
        for _ in range(a.n):
            celery_amqp_app.noop.apply_async(producer=producer)
    deadline = time.monotonic() + 60
    while queued(a.port, a.queue) < a.n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {queued(a.port, a.queue)} of {a.n} tasks queued after 60 s")
        time.sleep(0.01)
    return time.monotonic() - started


def stop(proc):
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def drain(a):
    done_file = a.log + ".done"
    for suffix in ("", ".first", ".count"):
        if os.path.exists(done_file + suffix):
            os.unlink(done_file + suffix)
    env = worker_env(a, done_file)
    fill_s = fill(a, env)
    cmd = ["/usr/bin/python3", "-m", "celery", "-A", "celery_amqp_app", "worker", "-P", a.pool,
           *(["-c", str(a.concurrency)] if a.pool != "solo" else []), "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", a.queue,
           "--loglevel", "WARNING"]
    with open(a.log, "ab") as log:
        spawned = time.time()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + a.timeout
        while not os.path.exists(done_file):
            if proc.poll() is not None:
                raise SystemExit(f"celery worker exited with {proc.returncode}; see {a.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"celery drain timed out after {a.timeout} s; see {a.log}")
            time.sleep(0.02)
    finally:
        stop(proc)
    with open(done_file) as f:
        last_done = float(f.read())
    with open(done_file + ".first") as f:
        first_start = float(f.read())
    seconds = last_done - first_start
    left = queued(a.port, a.queue)
    return {"tool": "celery", "mode": "drain", "pool": a.pool if a.pool == "solo" else f"{a.pool} -c {a.concurrency}", "queue": a.queue, "count": a.n,
            "fill_s": round(fill_s, 3), "startup_s": round(first_start - spawned, 3),
            "seconds": round(seconds, 6), "rate": round(a.n / seconds, 1), "left": left}


def main():
    # SIGTERM (bench/amqp.sh's clean-up, timeout(1)) unwinds, so the worker is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["drain"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--queue", default="celery")
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--pool", default="solo", choices=["solo", "prefork", "threads"])
    p.add_argument("--concurrency", type=int, default=2)
    a = p.parse_args()
    print(json.dumps(drain(a)))


if __name__ == "__main__":
    main()
