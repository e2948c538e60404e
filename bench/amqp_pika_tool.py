#!/usr/bin/python3
"""The pika side of bench/amqp.sh: the modes of bench/amqp_load.cpp with pika 1.2's
BlockingConnection, measured the same way, with the same JSON line on stdout.

  amqp_pika_tool.py publish --port P --queue Q --count N --size BYTES [--confirm]
  amqp_pika_tool.py consume --port P --queue Q --count N [--prefetch K]
  amqp_pika_tool.py delete  --port P --queue Q

publish: queue_declare(durable), N persistent messages (delivery_mode 2) to the default
exchange. With --confirm the channel is in confirm mode (confirm_delivery), so each
basic_publish waits for its ack: what a pika BlockingConnection user gets (no window). The clock
stops when a passive queue_declare counts all N in the queue (polled 1 ms apart, as
amqp_load does). consume: basic_qos(K), basic_consume with acks, basic_ack of each delivery
(multiple=False) from the callback, until N; then basic_cancel, and the clock stops at its
cancel-ok. Needs Debian's python3-pika.
"""

import argparse
import json
import sys
import time

import pika


def connect(a):
    params = pika.ConnectionParameters(host=a.host, port=a.port, virtual_host=a.vhost,
                                       credentials=pika.PlainCredentials(a.user, a.password),
                                       heartbeat=0, blocked_connection_timeout=None)
    return pika.BlockingConnection(params)


def result(a, seconds, cpu, nacks=0, **extra):
    """cpu: this process's CPU seconds over the measurement; near `seconds`, pika was the
    limit, not the broker."""
    out = {"tool": "pika", "mode": a.mode, "queue": a.queue, "count": a.count, "size": a.size,
           "confirm": a.confirm, "prefetch": a.prefetch, "seconds": round(seconds, 6),
           "rate": round(a.count / seconds, 1) if seconds > 0 else 0.0,
           "client_cpu": round(cpu / seconds, 3) if seconds > 0 else 0.0, "nacks": nacks}
    out.update(extra)
    return out


def publish(a, ch):
    before = ch.queue_declare(a.queue, durable=True).method.message_count
    if a.confirm:
        ch.confirm_delivery()
    body = b"x" * a.size
    props = pika.BasicProperties(delivery_mode=2)
    nacks = 0
    started, cpu0 = time.monotonic(), time.process_time()
    for _ in range(a.count):
        try:
            ch.basic_publish("", a.queue, body, props)
        except pika.exceptions.NackError:
            nacks += 1
    polls = 0
    while ch.queue_declare(a.queue, durable=True, passive=True).method.message_count < \
            before + a.count - nacks:
        polls += 1
        time.sleep(0.001)
    return result(a, time.monotonic() - started, time.process_time() - cpu0, nacks,
                  queue_polls=polls)


def consume(a, ch):
    ch.queue_declare(a.queue, durable=True)
    ch.basic_qos(prefetch_count=a.prefetch)
    state = {"received": 0, "bytes": 0}

    def on_message(channel, deliver, _props, body):
        state["received"] += 1
        state["bytes"] += len(body)
        channel.basic_ack(deliver.delivery_tag)
        if state["received"] >= a.count:
            channel.stop_consuming()

    started, cpu0 = time.monotonic(), time.process_time()
    tag = ch.basic_consume(a.queue, on_message)
    deadline = started + a.timeout
    while state["received"] < a.count:
        if time.monotonic() > deadline:
            raise SystemExit(f"amqp_pika_tool consume: timed out with {state['received']} of "
                             f"{a.count}")
        ch.connection.process_data_events(time_limit=1)
    ch.basic_cancel(tag)
    seconds = time.monotonic() - started
    a.size = state["bytes"] // a.count
    return result(a, seconds, time.process_time() - cpu0)


def delete(a, ch):
    ok = ch.queue_delete(a.queue)
    return {"tool": "pika", "mode": "delete", "queue": a.queue,
            "messages": ok.method.message_count}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["publish", "consume", "delete"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5672)
    p.add_argument("--queue", required=True)
    p.add_argument("--user", default="guest")
    p.add_argument("--password", default="guest")
    p.add_argument("--vhost", default="/")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--confirm", action="store_true")
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--timeout", type=float, default=600.0)
    a = p.parse_args()
    if a.mode != "delete" and a.count <= 0:
        p.error("--count must be positive")
    conn = connect(a)
    try:
        ch = conn.channel()
        out = {"publish": publish, "consume": consume, "delete": delete}[a.mode](a, ch)
    finally:
        if conn.is_open:
            conn.close()
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
