#!/usr/bin/env python3
"""Turns the raw measurements of bench/run.sh into a markdown report.

    report.py <raw-dir> <output.md>

<raw-dir> holds machine.env and memory.env (key=value lines) and one redis-benchmark --csv
file per measurement, named <label>__<server>__<round>.csv (a <file>.failed marker when the
run failed). Each figure is the median over rounds; a failed round fails the figure. The
report is printed and written to <output.md>. Ratios are conveyor / redis."""

import csv
import os
import statistics
import sys


def read_env(path):
    values = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    values[key] = value
    return values


def read_runs(raw):
    """{(label, server): {test: row}} with row = {'rps', 'p50', 'p99', 'rounds'}: medians over
    rounds. A label/server with any failed round maps to None."""
    rounds = {}
    for name in sorted(os.listdir(raw)):
        if not name.endswith(".csv"):
            continue
        label, server, _round = name[:-4].split("__")
        path = os.path.join(raw, name)
        per_test = rounds.setdefault((label, server), {})
        if os.path.exists(path + ".failed"):
            rounds[(label, server)] = None
            continue
        if per_test is None:
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                test = row["test"].split(" ")[0]  # "ENQUEUE benchq xxx" -> "ENQUEUE"
                per_test.setdefault(test, []).append(
                    (float(row["rps"]), float(row["p50_latency_ms"]),
                     float(row["p99_latency_ms"])))
    runs = {}
    for key, per_test in rounds.items():
        if per_test is None:
            runs[key] = None
            continue
        runs[key] = {test: {"rps": statistics.median(v[0] for v in values),
                            "p50": statistics.median(v[1] for v in values),
                            "p99": statistics.median(v[2] for v in values),
                            "rounds": len(values)}
                     for test, values in per_test.items()}
    return runs


def fmt_rps(row):
    return "failed" if row is None else f"{row['rps']:,.0f}"


def fmt_lat(row):
    return "failed" if row is None else f"{row['p50']:.3f} / {row['p99']:.3f}"


def ratio(a, b):
    if a is None or b is None or not b:
        return "n/a"
    return f"{a / b:.2f}"


def get(runs, label, server, test):
    rows = runs.get((label, server))
    return None if rows is None else rows.get(test)


def throughput_table(runs):
    lines = ["| benchmark | pipeline | redis rps | conveyor rps | conveyor/redis | "
             "redis p50/p99 ms | conveyor p50/p99 ms |",
             "|---|---|---|---|---|---|---|"]
    summary = []
    for pipeline in ("1", "16"):
        label = f"core_P{pipeline}"
        tests = []
        for server in ("redis", "conveyor"):
            for test in (runs.get((label, server)) or {}):
                if test not in tests:
                    tests.append(test)
        for test in tests:
            r, c = get(runs, label, "redis", test), get(runs, label, "conveyor", test)
            q = ratio(c and c["rps"], r and r["rps"])
            lines.append(f"| {test} | {pipeline} | {fmt_rps(r)} | {fmt_rps(c)} | {q} | "
                         f"{fmt_lat(r)} | {fmt_lat(c)} |")
            summary.append((f"{test} -P {pipeline} (rps)", q))
    return lines, summary


def push_table(runs):
    lines = ["| pipeline | redis LPUSH | redis LPUSH (AOF always) | conveyor LPUSH | "
             "conveyor ENQUEUE | ENQUEUE/redis LPUSH | ENQUEUE/redis AOF-always LPUSH |",
             "|---|---|---|---|---|---|---|"]
    summary = []
    for pipeline in ("1", "16"):
        label = f"push_P{pipeline}"
        r = get(runs, label, "redis", "LPUSH")
        aof = get(runs, label, "redis_aof", "LPUSH")
        cl = get(runs, label, "conveyor_lpush", "LPUSH")
        ce = get(runs, label, "conveyor", "ENQUEUE")
        if not any((r, aof, cl, ce)) and (label, "redis") not in runs:
            continue
        q1 = ratio(ce and ce["rps"], r and r["rps"])
        q2 = ratio(ce and ce["rps"], aof and aof["rps"])
        aof_cell = fmt_rps(aof) if (label, "redis_aof") in runs else "skipped"
        lines.append(f"| {pipeline} | {fmt_rps(r)} | {aof_cell} | {fmt_rps(cl)} | "
                     f"{fmt_rps(ce)} | {q1} | {q2} |")
        summary.append((f"ENQUEUE vs redis LPUSH -P {pipeline} (rps)", q1))
        if (label, "redis_aof") in runs:
            summary.append((f"ENQUEUE vs redis AOF-always LPUSH -P {pipeline} (rps)", q2))
        summary.append((f"conveyor LPUSH vs redis LPUSH -P {pipeline} (rps)",
                        ratio(cl and cl["rps"], r and r["rps"])))
    return lines, summary


def memory_table(mem):
    if not mem:
        return [], []

    def per_item(name, kind):
        try:
            before, after = int(mem[f"{name}_{kind}_before"]), int(mem[f"{name}_{kind}_after"])
            items = int(mem[f"{name}_items"])
        except (KeyError, ValueError):
            return None
        return (after - before) / items if items else None

    redis_used = per_item("redis_mem", "used")
    redis_rss = per_item("redis_mem", "rss")
    conv_rss = per_item("conveyor_mem", "rss")
    conv_used = per_item("conveyor_mem", "used")

    def cell(v):
        return "n/a" if v is None else f"{v:,.1f}"

    lines = ["| measure | items held | bytes per item |",
             "|---|---|---|",
             f"| redis used_memory growth | {mem.get('redis_mem_items', '?')} | "
             f"{cell(redis_used)} |",
             f"| redis RSS growth | {mem.get('redis_mem_items', '?')} | {cell(redis_rss)} |",
             f"| conveyor RSS growth | {mem.get('conveyor_mem_items', '?')} | "
             f"{cell(conv_rss)} |"]
    if conv_used is not None:
        lines.append(f"| conveyor used_memory growth (own INFO) | "
                     f"{mem.get('conveyor_mem_items', '?')} | {cell(conv_used)} |")
    lines += ["",
              f"conveyor RSS / redis used_memory: **{ratio(conv_rss, redis_used)}**; "
              f"conveyor RSS / redis RSS (like for like): **{ratio(conv_rss, redis_rss)}**"]
    summary = [("memory per item: conveyor RSS / redis used_memory", ratio(conv_rss, redis_used)),
               ("memory per item: conveyor RSS / redis RSS", ratio(conv_rss, redis_rss))]
    return lines, summary


def machine_table(machine, keys):
    """The machine section: one row per key of machine.env, n/a when absent."""
    return (["## Machine", "", "| | |", "|---|---|"] +
            [f"| {key} | {machine.get(key) or 'n/a'} |" for key in keys])


def write_report(md, output):
    text = "\n".join(md) + "\n"
    with open(output, "w") as f:
        f.write(text)
    print(text)


def main():
    raw, output = sys.argv[1], sys.argv[2]
    machine = read_env(os.path.join(raw, "machine.env"))
    mem = read_env(os.path.join(raw, "memory.env"))
    runs = read_runs(raw)

    t_lines, t_sum = throughput_table(runs)
    p_lines, p_sum = push_table(runs)
    m_lines, m_sum = memory_table(mem)

    md = ["# Conveyor vs Redis, side by side", "",
          f"Measured {machine.get('date', '?')} at commit `{machine.get('commit', '?')}` by "
          "`bench/run.sh`. Ratios are conveyor / redis (throughput: above 1 is faster; "
          "memory: above 1 is bigger). Requests/s and latencies are medians over "
          f"{machine.get('rounds', '?')} alternating rounds.", ""]
    md += machine_table(machine, (
        "nproc", "cpu", "kernel", "memory_total", "redis", "redis_benchmark", "conveyor_version",
        "conveyor_persistence", "requests", "clients", "payload_bytes", "memory_items", "rounds",
        "pinned", "loadavg_start", "loadavg_end"))
    md += ["", "## Summary (conveyor / redis)", "", "| measure | ratio |", "|---|---|"]
    md += [f"| {name} | {value} |" for name, value in t_sum + p_sum + m_sum]
    md += ["", "## Throughput (redis-benchmark -t ping,lpush,rpop)", ""] + t_lines
    md += ["", "## ENQUEUE against LPUSH (100-byte payload)", "",
           "Redis without persistence and with `appendonly yes, appendfsync always`; conveyor "
           "with `--fsync no` (see conveyor_persistence above; durable runs: "
           "bench/durable.sh).", ""] + p_lines
    if m_lines:
        md += ["", f"## Memory ({mem.get('redis_mem_items', '?')} LPUSHed 100-byte items, "
               "fresh servers)", ""] + m_lines
    write_report(md, output)


if __name__ == "__main__":
    main()
