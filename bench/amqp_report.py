#!/usr/bin/python3
"""The report of bench/amqp.sh from its raw directory: one JSON file per measurement, named
<tool>__<case>__<body>__<broker>__r<round>.json, and machine.env.

  amqp_report.py --raw DIR --output FILE   the markdown report (also printed)
  amqp_report.py --line FILE               one measurement as a progress line
"""

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from report import machine_table, read_env, write_report  # noqa: E402

TOOLS = {"cpp": "amqp_load (C++)", "pika": "pika 1.2", "celery": "Celery 5.2"}
CASES = {"publish": "publish, no confirms", "confirm": "publish with confirms",
         "consume": "consume + ack", "drain": "worker drain (no-op tasks)"}
TARGETS = {"publish": 2.0, "confirm": 2.0, "consume": 2.0, "drain": 1.0}
ORDER = [(t, c, b) for t in ("cpp", "pika") for b in ("100B", "64KiB")
         for c in ("publish", "confirm", "consume")] + [("celery", "drain", "task")]

DURABILITY = [
    "## Durability of each side", "",
    "- **RabbitMQ**: durable classic queues (3.10's default, queue version 1), persistent "
    "messages (delivery_mode 2). With publisher confirms it acks a persistent message only once "
    "its message store has written and fsynced it (in batches, RabbitMQ's own group commit). "
    "Without confirms its fsync timing is its own: nothing says the message is on disk when "
    "the publish is done. Data under the run's mktemp -d (filesystem in the table above).",
    "- **conveyor**: `--fsync` as in the table (`always`: a publish is confirmed after the "
    "log's fdatasync; group commit), same filesystem, same queues and messages.",
    "- Both brokers run the whole time; only one is under load at a time. RabbitMQ's Erlang VM "
    "may use every core; BENCH_PIN=1 puts both brokers on CPU 0 and the clients on the rest.",
]


def load(raw):
    runs = {}
    for name in sorted(os.listdir(raw)):
        if not name.endswith(".json") or name.count("__") != 4:
            continue
        tool, case, body, broker, _round = name[:-5].split("__")
        with open(os.path.join(raw, name)) as f:
            runs.setdefault((tool, case, body, broker), []).append(json.load(f))
    return runs


def summary(results):
    """(median rate, 'median (min-max)' text, failures) of a list of results."""
    if not results:
        return None, "not run", 0
    rates = [r["rate"] for r in results if "failed" not in r]
    failed = len(results) - len(rates)
    if not rates:
        return None, f"failed ({results[0]['failed'][:80]})", failed
    med = statistics.median(rates)
    text = f"{med:,.0f}" if len(rates) == 1 else \
        f"{med:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
    if failed:
        text += f", {failed} failed"
    return med, text, failed


def client_busy(results):
    """Median share of the wall time the client spent on CPU ('' for the Celery drain)."""
    busy = [r["client_cpu"] for r in results if "client_cpu" in r]
    return f"{statistics.median(busy):.0%}" if busy else "—"


def results_table(runs):
    lines = ["| client | case | body | messages | RabbitMQ msg/s, median (min-max) | "
             "conveyor msg/s, median (min-max) | conveyor / RabbitMQ | target | "
             "client CPU busy (RabbitMQ / conveyor) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for tool, case, body in ORDER:
        rabbit = runs.get((tool, case, body, "rabbitmq"), [])
        conv = runs.get((tool, case, body, "conveyor"), [])
        if not rabbit and not conv:
            continue
        r_med, r_text, _ = summary(rabbit)
        c_med, c_text, c_failed = summary(conv)
        counts = sorted({r["count"] for r in rabbit + conv if "count" in r})
        ratio = f"{c_med / r_med:.2f}" if r_med and c_med else "n/a"
        need = TARGETS[case]
        if r_med and c_med and not c_failed:
            verdict = "**met**" if c_med / r_med >= need else "**not met**"
        else:
            verdict = "not measured"
        lines.append(f"| {TOOLS[tool]} | {CASES[case]} | {body} | "
                     f"{'/'.join(str(c) for c in counts) or '?'} | {r_text} | {c_text} | "
                     f"{ratio} | ≥ {need:g}×: {verdict} | {client_busy(rabbit)} / "
                     f"{client_busy(conv)} |")
    return lines


def report(raw, output):
    machine = read_env(os.path.join(raw, "machine.env"))
    runs = load(raw)
    md = ["# Conveyor's AMQP front-end next to RabbitMQ", "",
          f"Measured {machine.get('date', '?')} at commit `{machine.get('commit', '?')}` by "
          "`bench/amqp.sh`. Every case ran on RabbitMQ, then on conveyor, in each round, on "
          "fresh durable queues with persistent messages; rates are messages (or tasks) per "
          "second, medians over the rounds. Ratios are conveyor / RabbitMQ: above 1 means "
          "conveyor is faster.", ""]
    md += machine_table(machine, ["nproc", "cpu", "kernel", "memory_total", "filesystem",
                                  "rabbitmq", "pika", "celery", "conveyor_binary", "fsync",
                                  "counts", "celery_drain", "rounds", "rabbitmq_up_s",
                                  "loadavg_start", "loadavg_end"])
    md += ["", "## Rates", ""] + results_table(runs) + [""]
    md += ["Publish without confirms stops the clock when a passive queue.declare counts every "
           "message in the queue; with confirms, at the last confirm (amqp_load: window "
           "1000 unconfirmed; pika: one at a time, as BlockingConnection does). Consume stops "
           "at the cancel-ok after the last ack (one ack per delivery, prefetch 100). The "
           "Celery drain counts from the first task started to the last finished. "
           "\"Client CPU busy\" is the load tool's own CPU time over the wall time: near 100 % "
           "the client, not the broker, set the rate (pika's pure-Python codec does, from "
           "about 10,000 messages/s), and the ratio then understates the broker's.", ""]
    md += DURABILITY
    try:
        load1 = float(machine.get("loadavg_end", "0").split()[0])
        if load1 > float(machine.get("nproc", "1")):
            md += ["", f"**Warning**: load average {load1} at the end is above the core count: "
                   "the figures are noise; rerun on a quiet machine before quoting them."]
    except ValueError:
        pass
    write_report(md, output)


def line(path):
    with open(path) as f:
        r = json.load(f)
    if "failed" in r:
        return "FAILED: " + r["failed"]
    text = f"{r['rate']:>10,.0f} msg/s  ({r['count']} in {r['seconds']:.2f} s"
    if r.get("nacks"):
        text += f", {r['nacks']} nacks"
    if "startup_s" in r:
        text += f", worker start-up {r['startup_s']:.2f} s"
    return text + ")"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw")
    p.add_argument("--output")
    p.add_argument("--line")
    a = p.parse_args()
    if a.line:
        print(line(a.line))
    elif a.raw and a.output:
        report(a.raw, a.output)
    else:
        p.error("--line FILE, or --raw DIR --output FILE")


if __name__ == "__main__":
    main()
