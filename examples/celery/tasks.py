"""A Celery app that uses Conveyor as its broker over AMQP, with results over rpc://.

The broker URL comes from CONVEYOR_BROKER_URL; the default names port 5673 explicitly, the
port `conveyor server --amqp-port 5673` listens on in this example's README.md.

    python3 -m celery -A tasks worker -P solo -l info        # in this directory
    python3 producer.py 2 3                                  # sends add(2, 3), prints 5
"""

import os
import time

from celery import Celery

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "amqp://guest:guest@127.0.0.1:5673//")

app = Celery("tasks", broker=BROKER_URL, backend="rpc://")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Ack after the task ran: a worker that dies mid-task leaves its delivery unacked, and
    # Conveyor hands it to another consumer (at once when the connection closes, else when
    # the delivery's lease, --amqp-consumer-timeout, runs out).
    task_acks_late=True,
    worker_prefetch_multiplier=1,
)


@app.task
def add(x, y):
    return x + y


@app.task
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds
