"""The Celery side of bench/worker.sh: a no-op task and a latency stamp, broker from
BENCH_BROKER (redis://...). Results are ignored (no backend): the stamp task writes its
enqueue-to-start latency to the redis list bench:latency itself."""

import os
import time

import redis
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)
_redis = None


@app.task(name="bench.noop")
def noop():
    return None


@app.task(name="bench.stamp")
def stamp(sent):
    started = time.time()
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["BENCH_BROKER"])
    _redis.rpush("bench:latency", f"{started - sent:.6f}")
