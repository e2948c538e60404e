#!/usr/bin/env python3
"""Helpers for bench/durable.sh that redis-cli and redis-benchmark cannot do well.

    durable_tool.py wait-ping --port P --pid PID --t0 EPOCH_SECONDS [--timeout S]
        Polls PING (a fresh connection every ~5 ms) until the server answers +PONG (not
        -LOADING, not a refused connection) and prints the seconds since EPOCH_SECONDS (the
        caller's $EPOCHREALTIME taken just before it started the server). Exit 1 if the
        process ends or the timeout passes first.

    durable_tool.py churn --port P --data-dir DIR --tasks N [--live L] [--batch B]
                          [--payload-size BYTES] [--interval S] [--series FILE]
        Keeps about L live tasks in queue `churnq` while N tasks go through ENQUEUE, LEASE
        and ACK. One connection, one round trip per batch: the ACKs of the previous batch's
        leases, B ENQUEUEs and `LEASE COUNT B FROM churnq` in one pipeline, so between L and
        L + B tasks are live. Every S seconds it samples `du -sb DIR` and INFO persistence
        into FILE (CSV). Prints key=value lines (the summary) on stdout.
"""

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import time


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RespError(Exception):
    pass


class NeedMore(Exception):
    pass


def parse(buf, pos):
    """One RESP2 reply from buf at pos: (value, next pos); NeedMore when incomplete.
    Error replies come back as RespError values (not raised)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise NeedMore
    kind, line = buf[pos:pos + 1], buf[pos + 1:end]
    pos = end + 2
    if kind == b"+":
        return line.decode(), pos
    if kind == b"-":
        return RespError(line.decode()), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise NeedMore
        return bytes(buf[pos:pos + n]), pos + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    raise RuntimeError(f"unexpected RESP type byte {kind!r}")


class Connection:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def call_many(self, payload, count):
        """Sends the encoded commands, returns their `count` replies."""
        self.sock.sendall(payload)
        replies = []
        while len(replies) < count:
            try:
                value, self.pos = parse(self.buf, self.pos)
                replies.append(value)
            except NeedMore:
                if self.pos:
                    del self.buf[:self.pos]
                    self.pos = 0
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                self.buf += chunk
        return replies

    def call(self, *args):
        return self.call_many(encode(*args), 1)[0]


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def try_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(256)
                if not chunk:
                    return False
                reply += chunk
            return reply.startswith(b"+PONG")
    except OSError:
        return False


def wait_ping(args):
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        if try_ping(args.port):
            print(f"{time.time() - args.t0:.3f}")
            return 0
        if not process_alive(args.pid):
            print(f"process {args.pid} ended before answering PING", file=sys.stderr)
            return 1
        time.sleep(0.005)
    print(f"no PONG on port {args.port} within {args.timeout} s", file=sys.stderr)
    return 1


def du_bytes(path):
    """`du -sb` (apparent size). A file removed while du walks is skipped, not fatal."""
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout
    try:
        return int(out.split()[0])
    except (IndexError, ValueError):
        return -1


def info_fields(conn, section):
    text = conn.call("INFO", section)
    if isinstance(text, RespError):
        return {}
    fields = {}
    for line in text.decode().splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value
    return fields


def lease_tokens(reply):
    if isinstance(reply, RespError):
        raise RuntimeError(f"LEASE failed: {reply}")
    tokens = []
    for task in reply:
        fields = dict(zip(task[0::2], task[1::2]))
        tokens.append(fields[b"lease"])
    return tokens


def check_replies(replies, what):
    for r in replies:
        if isinstance(r, RespError):
            raise RuntimeError(f"{what} failed: {r}")


def churn(args):
    conn = Connection(args.port)
    payload = b"x" * args.payload_size
    enqueue = encode("ENQUEUE", "churnq", payload)
    lease = encode("LEASE", "COUNT", str(args.batch), "FROM", "churnq")

    series_file = open(args.series, "w", newline="") if args.series else None
    series = csv.writer(series_file) if series_file else None
    if series:
        series.writerow(["seconds", "acked", "du_bytes", "info_persistence"])

    max_du, max_du_at, samples = -1, 0, 0

    def sample(t, acked):
        nonlocal max_du, max_du_at, samples
        size = du_bytes(args.data_dir)
        info = info_fields(conn, "persistence")
        samples += 1
        if size > max_du:
            max_du, max_du_at = size, acked
        if series:
            series.writerow([f"{t:.2f}", acked, size, json.dumps(info, sort_keys=True)])
            series_file.flush()
        return size, info

    # Prefill: the live tasks that stay queued while the churn passes through.
    for start in range(0, args.live, 1000):
        n = min(1000, args.live - start)
        check_replies(conn.call_many(enqueue * n, n), "ENQUEUE")

    t_start = time.monotonic()
    next_sample = t_start
    next_progress = args.tasks // 10 or 1
    pending = []            # lease tokens of the previous batch, acked in the next pipeline
    leased = acked = 0
    while leased < args.tasks or pending:
        b = min(args.batch, args.tasks - leased)
        parts = [encode("ACK", token) for token in pending]
        if b:
            parts.append(enqueue * b)
            parts.append(lease if b == args.batch else
                         encode("LEASE", "COUNT", str(b), "FROM", "churnq"))
        replies = conn.call_many(b"".join(parts), len(pending) + (b + 1 if b else 0))
        acks = replies[:len(pending)]
        for r in acks:
            if r != 1:
                raise RuntimeError(f"ACK replied {r!r}")
        acked += len(pending)
        if b:
            check_replies(replies[len(pending):-1], "ENQUEUE")
            pending = lease_tokens(replies[-1])
            if len(pending) != b:
                raise RuntimeError(f"LEASE COUNT {b} gave {len(pending)} tasks")
            leased += b
        else:
            pending = []
        now = time.monotonic()
        if now >= next_sample:
            sample(now - t_start, acked)
            next_sample = now + args.interval
        if acked >= next_progress:
            rate = acked / max(now - t_start, 1e-9)
            print(f"  churned {acked:,} / {args.tasks:,} ({rate:,.0f} tasks/s), "
                  f"max data dir so far {max_du:,} bytes", file=sys.stderr)
            next_progress += args.tasks // 10 or 1
    elapsed = time.monotonic() - t_start
    end_du, end_info = sample(elapsed, acked)
    stats = info_fields(conn, "stats")
    print(f"churn_tasks={acked}")
    print(f"churn_seconds={elapsed:.2f}")
    print(f"churn_rate={acked / elapsed:.0f}")
    print(f"churn_live_target={args.live}")
    print(f"churn_batch={args.batch}")
    print(f"churn_live_end={stats.get('tasks_live', '')}")
    print(f"churn_qlen_end={conn.call('QLEN', 'churnq')}")
    print(f"churn_du_max={max_du}")
    print(f"churn_du_max_at_acked={max_du_at}")
    print(f"churn_du_end={end_du}")
    print(f"churn_samples={samples}")
    for key, value in sorted(end_info.items()):
        print(f"churn_info_{key}={value}")
    if series_file:
        series_file.close()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("wait-ping")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--timeout", type=float, default=300)
    c = sub.add_parser("churn")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--data-dir", required=True)
    c.add_argument("--tasks", type=int, required=True)
    c.add_argument("--live", type=int, default=1000)
    c.add_argument("--batch", type=int, default=200)
    c.add_argument("--payload-size", type=int, default=100)
    c.add_argument("--interval", type=float, default=1.0)
    c.add_argument("--series")
    args = parser.parse_args()
    return wait_ping(args) if args.command == "wait-ping" else churn(args)


if __name__ == "__main__":
    sys.exit(main())
