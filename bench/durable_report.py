#!/usr/bin/env python3
"""Turns the raw measurements of bench/durable.sh into a markdown report.

    durable_report.py <raw-dir> <output.md>

<raw-dir> holds machine.env, t15_disk.env, recovery.env, churn.env (key=value lines),
INFO persistence dumps (*.persistence) and one redis-benchmark --csv file per T15
measurement, t15_<mode>__<server>__<round>.csv (read as bench/report.py reads run.sh's).
Figures are medians over rounds. Ratios are conveyor / redis. The report is printed and
written to <output.md>."""

import csv
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import (fmt_lat, fmt_rps, get, machine_table, ratio, read_env,  # noqa: E402
                    read_runs, write_report)

T15_TARGET = 1.0
RECOVERY_TARGET_S = 5.0


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def fmt_bytes(n):
    if n is None or n < 0:
        return "n/a"
    return f"{n:,.0f} ({n / 2**20:,.1f} MiB)"


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def t15_section(raw, runs, machine):
    disk = read_env(os.path.join(raw, "t15_disk.env"))
    requests = num(machine.get("requests"))
    lines = ["| fsync | redis LPUSH rps | conveyor ENQUEUE rps | conveyor LPUSH rps | "
             "ENQUEUE / redis | conveyor LPUSH / redis | target (ENQUEUE / redis ≥ 1.0) |",
             "|---|---|---|---|---|---|---|"]
    lat = ["| fsync | redis LPUSH p50 / p99 ms | conveyor ENQUEUE p50 / p99 ms | "
           "conveyor LPUSH p50 / p99 ms |", "|---|---|---|---|"]
    dsk = ["| fsync | redis AOF bytes per push | conveyor log bytes per ENQUEUE | "
           "conveyor log bytes per LPUSH | conveyor pushes per fsync (ENQUEUE / LPUSH) |",
           "|---|---|---|---|---|"]
    summary = []
    for mode in ("always", "everysec"):
        label = f"t15_{mode}"
        if (label, "redis") not in runs:
            continue
        r = get(runs, label, "redis", "LPUSH")
        ce = get(runs, label, "conveyor_enqueue", "ENQUEUE")
        cl = get(runs, label, "conveyor_lpush", "LPUSH")
        q_e = ratio(ce and ce["rps"], r and r["rps"])
        q_l = ratio(cl and cl["rps"], r and r["rps"])
        ok = None if num(q_e) is None else num(q_e) >= T15_TARGET
        lines.append(f"| {mode} | {fmt_rps(r)} | {fmt_rps(ce)} | {fmt_rps(cl)} | {q_e} | {q_l} "
                     f"| {verdict(ok)} |")
        lat.append(f"| {mode} | {fmt_lat(r)} | {fmt_lat(ce)} | {fmt_lat(cl)} |")
        summary.append((f"T15 {mode}: conveyor ENQUEUE / redis LPUSH", q_e, verdict(ok)))
        summary.append((f"T15 {mode}: conveyor LPUSH / redis LPUSH", q_l, "(reference)"))

        def per_push(which):
            values = [num(v) for k, v in disk.items()
                      if k.startswith(f"t15_{mode}_{which}_") and k.endswith("_du")]
            m = median_of(values)
            return "n/a" if m is None or not requests else f"{m / requests:,.0f}"

        def per_fsync(which):
            ratios = []
            for name in os.listdir(raw):
                if name.startswith(f"t15_{mode}__{which}__") and name.endswith(".persistence"):
                    info = read_env(os.path.join(raw, name))
                    fsyncs = num(info.get("log_fsyncs"))
                    if fsyncs and requests:
                        ratios.append(requests / fsyncs)
            m = median_of(ratios)
            return "n/a" if m is None else f"{m:,.1f}"

        dsk.append(f"| {mode} | {per_push('redis')} | {per_push('conveyor_enqueue')} | "
                   f"{per_push('conveyor_lpush')} | {per_fsync('conveyor_enqueue')} / "
                   f"{per_fsync('conveyor_lpush')} |")
    if len(lines) == 2:
        return [], []
    md = ["## T15: durable pushes, side by side", "",
          f"redis-benchmark -c {machine.get('clients', '?')}, no pipelining, "
          f"-n {machine.get('requests', '?')}, 100-byte payloads; a fresh server and data "
          "directory per measurement. Redis `appendonly yes`, `save \"\"`, `appendfsync <mode>`; "
          "conveyor `--fsync <mode>`. Medians over "
          f"{machine.get('rounds', '?')} rounds, order alternating.", ""]
    md += lines + ["", "Latency (medians of the per-round p50 and p99):", ""] + lat
    md += ["", "Disk after one measurement (`du -sb` of the stopped server's directory / "
           "requests) and group commit (requests / INFO `log_fsyncs`):", ""] + dsk
    return md, summary


def recovery_section(raw):
    env = read_env(os.path.join(raw, "recovery.env"))
    if not env:
        return [], []

    def restarts(prefix):
        times, tasks = [], []
        i = 1
        while f"{prefix}_restart_{i}_seconds" in env:
            times.append(num(env[f"{prefix}_restart_{i}_seconds"]))
            tasks.append(env.get(f"{prefix}_restart_{i}_tasks", "?"))
            i += 1
        return times, tasks

    rows = ["| server | tasks filled | tasks after each restart | data dir | bytes per task | "
            "fill s | SIGTERM to exit s | start to PONG, median (min-max) s | target < 5 s |",
            "|---|---|---|---|---|---|---|---|---|"]
    summary = []
    for prefix, name in (("conveyor", "conveyor (`--fsync no` fill, default restart)"),
                         ("redis", "redis (AOF everysec), reference")):
        if f"{prefix}_tasks" not in env:
            continue
        times, tasks = restarts(prefix)
        med = median_of(times)
        tasks_n = num(env.get(f"{prefix}_tasks"))
        du = num(env.get(f"{prefix}_du"))
        per_task = f"{du / tasks_n:,.0f}" if du and tasks_n else "n/a"
        span = (f"{med:.3f} ({min(times):.3f}-{max(times):.3f})" if med is not None
                else "n/a")
        ok = None
        if prefix == "conveyor" and times:
            ok = max(times) < RECOVERY_TARGET_S
            summary.append((f"recovery of {env.get('conveyor_tasks')} tasks: slowest start to PONG, s",
                            f"{max(times):.3f}", verdict(ok)))
        rows.append(f"| {name} | {env.get(f'{prefix}_tasks', '?')} | {', '.join(tasks)} | "
                    f"{fmt_bytes(du)} | {per_task} | {env.get(f'{prefix}_fill_seconds', '?')} | "
                    f"{env.get(f'{prefix}_shutdown_seconds', '?')} | {span} | "
                    f"{verdict(ok) if prefix == 'conveyor' else '—'} |")
    md = ["## Recovery", "",
          "Restarts timed from the process start to the first `+PONG` (not `-LOADING`), "
          "polled every ~5 ms; the page cache is warm (the files were just written).", ""]
    md += rows
    log_lines = os.path.join(raw, "recovery_log_lines.txt")
    if os.path.exists(log_lines):
        with open(log_lines) as f:
            got = [line.strip() for line in f if line.strip()]
        if got:
            md += ["", "conveyor's own log at each restart:", ""]
            md += [f"    {line}" for line in got]
    return md, summary


def churn_series(path, tasks):
    """(acked, du) at the first sample past each tenth of the run."""
    if not tasks or not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = [(int(r["acked"]), int(r["du_bytes"])) for r in csv.DictReader(f)]
    picked, step = [], 1
    for acked, du in rows:
        if acked >= step * tasks / 10:
            picked.append((acked, du))
            while acked >= step * tasks / 10:
                step += 1
    return picked


def churn_section(raw, machine):
    env = read_env(os.path.join(raw, "churn.env"))
    if not env:
        return [], []
    info = read_env(os.path.join(raw, "churn_end.persistence"))
    tasks = num(env.get("churn_tasks"))
    du_max = num(env.get("churn_du_max"))
    du_end = num(env.get("churn_du_end"))
    du_stop = num(env.get("churn_du_after_stop"))
    rows = ["| measure | value |", "|---|---|",
            f"| tasks through ENQUEUE + LEASE + ACK | {env.get('churn_tasks', '?')} "
            f"({env.get('churn_seconds', '?')} s, {env.get('churn_rate', '?')} tasks/s) |",
            f"| live tasks kept (queued; leased batch {env.get('churn_batch', '?')}) | "
            f"{env.get('churn_live_target', '?')}, QLEN at end {env.get('churn_qlen_end', '?')} |",
            f"| result retention (`--result-ttl-ms`) | {machine.get('churn_result_ttl_ms', '?')} |",
            f"| INFO tasks_live at end / 2 s later | {env.get('churn_live_end', '?')} / "
            f"{env.get('churn_live_end_plus_2s', '?')} |",
            f"| data dir, max during the run ({env.get('churn_samples', '?')} samples) | "
            f"{fmt_bytes(du_max)} |",
            f"| data dir at the end / 2 s later | {fmt_bytes(du_end)} / "
            f"{fmt_bytes(num(env.get('churn_du_end_plus_2s')))} |",
            f"| data dir after SIGTERM | {fmt_bytes(du_stop)}, "
            f"{env.get('churn_files_after_stop', '?')} files |",
            f"| bytes per churned task (end) | "
            f"{f'{du_end / tasks:,.1f}' if du_end and tasks else 'n/a'} |",
            f"| RSS at the end | {fmt_bytes(num(env.get('churn_rss_end')))} |",
            f"| restart: start to PONG | {env.get('churn_restart_seconds', '?')} s "
            f"(QLEN {env.get('churn_restart_qlen', '?')}, tasks_live "
            f"{env.get('churn_restart_live', '?')}) |"]
    for key in ("log_bytes", "log_segments", "log_records_appended", "log_fsyncs"):
        if key in info:
            rows.append(f"| INFO persistence {key}, 2 s after the load | {info[key]} |")
    compaction = {k: v for k, v in info.items() if "compact" in k}
    for key, value in sorted(compaction.items()):
        rows.append(f"| INFO persistence {key}, 2 s after the load | {value} |")
    md = ["## Data directory under churn", "",
          "conveyor `--fsync no`; `du -sb` of the data directory sampled every second. "
          "No target is set for this figure; it shows whether the log is bounded by the live "
          "set or grows with the tasks that passed through.", ""] + rows
    if not compaction:
        md += ["", "INFO persistence reports no compaction field in this build."]
    series = churn_series(os.path.join(raw, "series", "churn.csv"), tasks)
    if series:
        md += ["", "Data dir (`du -sb`) as the churn went on:", "",
               "| tasks acked | " + " | ".join(f"{a:,}" for a, _ in series) + " |",
               "|---|" + "---|" * len(series),
               "| data dir MiB | " + " | ".join(f"{d / 2**20:,.1f}" for _, d in series) + " |"]
    summary = [("churn: data dir max during the run", fmt_bytes(du_max), "—"),
               ("churn: data dir at the end", fmt_bytes(du_end), "—"),
               ("churn: data dir after SIGTERM", fmt_bytes(du_stop), "—")]
    return md, summary


def main():
    raw, output = sys.argv[1], sys.argv[2]
    machine = read_env(os.path.join(raw, "machine.env"))
    runs = read_runs(raw)
    t_md, t_sum = t15_section(raw, runs, machine)
    r_md, r_sum = recovery_section(raw)
    c_md, c_sum = churn_section(raw, machine)

    md = ["# Durable conveyor vs durable Redis, side by side", "",
          f"Measured {machine.get('date', '?')} at commit `{machine.get('commit', '?')}` "
          "by `bench/durable.sh`. Ratios are conveyor / redis (above 1: conveyor faster).", "",
]
    md += machine_table(machine, (
        "nproc", "cpu", "kernel", "memory_total", "data_fs", "redis", "redis_benchmark",
        "conveyor_binary", "requests", "clients", "payload_bytes", "rounds", "recovery_tasks",
        "pinned", "loadavg_start", "loadavg_end"))
    md += ["", "## Summary", "", "| measure | value | target |", "|---|---|---|"]
    md += [f"| {name} | {value} | {target} |" for name, value, target in t_sum + r_sum + c_sum]
    for part in (t_md, r_md, c_md):
        if part:
            md += [""] + part
    write_report(md, output)


if __name__ == "__main__":
    main()
