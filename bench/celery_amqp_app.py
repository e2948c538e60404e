"""The Celery app of bench/amqp.sh's drain: one no-op task over an AMQP broker
(BENCH_BROKER=amqp://guest:guest@127.0.0.1:<port>//), queue BENCH_QUEUE, results ignored (no
backend).

The drain is timed inside the worker, with any pool: the first task to start creates
BENCH_DONE_FILE.first with its start time (time.time()); every finished task appends one byte
to BENCH_DONE_FILE.count (O_APPEND, shared by the pool's processes); the task whose byte makes
it BENCH_TASKS long creates BENCH_DONE_FILE with the time it finished."""

import os
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun

queue = os.environ.get("BENCH_QUEUE", "celery")
app = Celery("bench_amqp", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_ignore_result=True, task_default_queue=queue,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

_state = {"started": False, "count_fd": None}


@app.task(name="bench.noop")
def noop():
    return None


def _create_once(path, text):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    os.write(fd, text.encode())
    os.close(fd)


@task_prerun.connect
def _on_prerun(**_kwargs):
    if not _state["started"]:
        _state["started"] = True
        _create_once(os.environ["BENCH_DONE_FILE"] + ".first", f"{time.time():.6f}")


@task_postrun.connect
def _on_postrun(**_kwargs):
    path = os.environ["BENCH_DONE_FILE"]
    if _state["count_fd"] is None:
        _state["count_fd"] = os.open(path + ".count", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                     0o644)
    fd = _state["count_fd"]
    os.write(fd, b".")
    if os.fstat(fd).st_size >= int(os.environ["BENCH_TASKS"]):
        _create_once(path, f"{time.time():.6f}")
