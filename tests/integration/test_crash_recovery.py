"""Crash recovery of the durable log (docs/reliability.md T1 and T8, and restart basics).

- CrashUnderLoadTest (T1): producers ENQUEUE, workers LEASE/ACK/FAIL/RELEASE, while the
  broker is killed with SIGKILL at random moments (20+ times) and restarted on the same port
  and data directory. Then a clean restart, a drain, and a Jepsen-style total-queue check:
  every acknowledged ENQUEUE was acked or is delivered in the drain (lost = 0), nothing is
  delivered that no producer sent (unexpected = 0), and a task is delivered again only when
  no ack of it has taken effect. Once with `--fsync always`, once with `--fsync everysec`
  (replies wait for the write to the OS in every mode, so a kill -9 loses nothing there
  either).
- The same under simulated power loss (T2, `--fsync always`): the server runs with
  `--enable-debug-command yes` and CONVEYOR_DEBUG_TRACK_SYNCS=1, so each log file has a side
  file saying how far it was durable at its last fsync; after every kill -9 each log file is
  cut at a random point between that and its end (what a power loss can leave: the unsynced
  tail gone, or part of it), and still nothing acknowledged may be lost.
- PoisonTaskTest (T8): a task whose worker dies on every delivery ends in the dead letters
  after exactly RETRIES + 1 deliveries, with the broker killed between deliveries.
- RestartTest: every task state and stored results survive a clean stop and a kill -9;
  leases keep their remaining time; `INFO persistence` names the fsync mode.

Environment:
  CONVEYOR_SOAK_SECONDS  load phase of each crash test in seconds (default: a short CI run)
  CONVEYOR_CRASH_SEED    replay a printed seed (kill schedule and every client's choices;
                         thread interleaving is not reproducible)
"""

import collections
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import unittest
import zlib

import redis

from harness import (ConveyorTestCase, ServerStartError, enqueue,
                     free_port_outside_ephemeral_range, info_section, lease, lease_one,
                     run_conveyor, task_info, wait_for_lease, wait_until)

SOAK_SECONDS = float(os.environ.get("CONVEYOR_SOAK_SECONDS") or 0)
QUEUES = ("crash_a", "crash_b")
LEASE_MS = 2000
LEASE_S = LEASE_MS / 1000.0
MIN_KILLS = 20
# Producers wait while this many tasks are enqueued but not yet settled, so the workers keep
# up and the drain stays short.
MAX_BACKLOG = 1000
# An ACK/FAIL/RELEASE sent this long after its lease's reply must not succeed: the lease had
# ended (its time keeps running while the broker is down).
STALE_SLACK_S = 1.0
# The drain leases with this lease length (it acks up to 1,000 tasks one by one, which takes
# seconds under fsync always on a busy machine); the stale-lease checks use each delivery's own.
DRAIN_LEASE_MS = 120000
# A LEASELOST reply that arrives this long before the lease could have ended is a lease cut
# short (a restart must keep the remaining time).
EARLY_SLACK_S = 0.3
CONN_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def start_restartable(case, *args):
    """A server on a fixed port below the ephemeral range (see harness), so that restarts
    reuse the port while clients keep reconnecting."""
    for attempt in range(5):
        try:
            return case.start_conveyor(*args, port=free_port_outside_ephemeral_range())
        except ServerStartError as e:
            if "in use" not in str(e).lower() or attempt == 4:
                raise
    raise AssertionError("unreachable")


def queue_counts(server):
    """{queue: {ready, delayed, leased, dead}} from INFO queues."""
    out = {}
    for name, value in info_section(server, "queues").items():
        fields = dict(kv.split("=", 1) for kv in value.split(",") if "=" in kv)
        out[name] = {k: int(v) for k, v in fields.items()}
    return out


def wait_state(r, task_id, state, timeout):
    """TASK <id> once its state is `state` (polled)."""
    def check():
        info = task_info(r, task_id)
        return info if info and info["state"] == state else None
    return wait_until(check, timeout, message=f"task {task_id} to be {state}")


def fields(reply):
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)} \
        if isinstance(reply, list) else dict(reply)


# ---- the crash test under load ----------------------------------------------------------

def task_for(task_id):
    """The queue and payload a producer sends for `task_id`: derived from the id, so the
    history need not keep them (a 10-minute soak records hundreds of thousands of tasks)."""
    h = zlib.crc32(task_id.encode())
    queue = QUEUES[h % len(QUEUES)]
    return queue, f"{task_id}|{queue}|" + "x" * (h % 101)


class Delivery:
    __slots__ = ("id", "lease", "attempt", "t_sent", "t_recv", "phase", "settle")

    def __init__(self, task, t_sent, t_recv, phase):
        self.id = task["id"]
        self.lease = task["lease"]
        self.attempt = int(task["attempt"])
        self.t_sent = t_sent
        self.t_recv = t_recv
        self.phase = phase
        self.settle = None  # the Settle of this lease, if the worker sent one


class Settle:
    """ACK, FAIL or RELEASE of one lease. outcome: ok (its reply), leaselost (refused with no
    earlier attempt whose outcome is unknown), unknown (the connection broke before a reply,
    and no retry got a definite answer of its own), error (an unexpected reply)."""
    __slots__ = ("delivery", "kind", "tag", "outcome", "t_first_sent", "t_last_sent",
                 "t_done", "unknown_at", "t_end", "reply")

    def __init__(self, delivery, kind, tag):
        self.delivery = delivery
        self.kind = kind
        self.tag = tag
        self.outcome = None
        self.t_first_sent = None
        self.t_last_sent = None
        self.t_done = None
        self.unknown_at = None  # when the first attempt's connection broke
        self.t_end = None       # when the worker stopped trying (reply or gave up)
        self.reply = None


class Load:
    """Producers and workers against one (repeatedly killed) server, with their history."""

    def __init__(self, server, seed, producers=3, workers=3):
        self.server = server
        self.seed = seed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.attempted = set()     # ids of every ENQUEUE sent
        self.enqueued_ok = set()   # ids whose ENQUEUE got its reply
        self.deliveries = []       # Delivery, load and drain
        self.settles = []          # Settle
        self.errors = []           # unexpected replies and thread crashes
        self.wrong_payload = []    # deliveries whose queue or payload is not what was sent
        self.counts = collections.Counter()
        self.threads = [threading.Thread(target=self._guard, args=(self._producer, i),
                                         name=f"producer-{i}", daemon=True)
                        for i in range(producers)]
        self.threads += [threading.Thread(target=self._guard, args=(self._worker, i),
                                          name=f"worker-{i}", daemon=True)
                         for i in range(workers)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self, timeout=20.0):
        self.stop.set()
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def error(self, text):
        with self.lock:
            self.errors.append(text)

    def _guard(self, fn, idx):
        try:
            fn(idx, random.Random(f"{self.seed}-{fn.__name__}-{idx}"))
        except BaseException:  # noqa: B902 - reported by the main thread
            self.error(f"{threading.current_thread().name} crashed:\n{traceback.format_exc()}")

    @staticmethod
    def _pause():
        time.sleep(0.02)

    def _client(self):
        return self.server.client(timeout=5.0)

    # ---- producers ----

    def _producer(self, idx, rng):
        r = self._client()
        n = 0
        try:
            while not self.stop.is_set():
                task_id = f"p{idx}-{n}"
                n += 1
                while (len(self.enqueued_ok) - self.counts["settled"] > MAX_BACKLOG
                       and not self.stop.is_set()):
                    time.sleep(0.005)
                queue, payload = task_for(task_id)
                with self.lock:
                    self.attempted.add(task_id)
                while True:
                    try:
                        reply = r.execute_command("ENQUEUE", queue, payload, "ID", task_id,
                                                  "RETRIES", 10000)
                    except CONN_ERRORS:
                        self.counts["enqueue_no_reply"] += 1
                        self._pause()
                        # Half the time the producer retries the same id (idempotent), half
                        # the time it leaves the outcome unknown.
                        if self.stop.is_set() or rng.random() < 0.5:
                            break
                        self.counts["enqueue_retried"] += 1
                        continue
                    except redis.ResponseError as e:
                        if str(e).startswith("LOADING") and not self.stop.is_set():
                            self._pause()
                            continue
                        self.error(f"ENQUEUE {queue} ... ID {task_id}: got -{e}")
                        break
                    if reply != task_id:
                        self.error(f"ENQUEUE ID {task_id}: expected {task_id!r}, got {reply!r}")
                    else:
                        with self.lock:
                            self.enqueued_ok.add(task_id)
                    break
        finally:
            r.close()

    # ---- workers ----

    def _worker(self, idx, rng):
        r = self._client()
        held = collections.deque()  # deliveries to settle now
        late = collections.deque()  # (due, delivery): acked after the lease ran out
        try:
            while not self.stop.is_set():
                if late and late[0][0] <= time.monotonic():
                    self._settle(r, idx, late.popleft()[1], "ack")
                    continue
                if not held:
                    t_sent = time.monotonic()
                    try:
                        reply = r.execute_command("LEASE", "COUNT", rng.randint(1, 5),
                                                  "BLOCK", 100, "FOR", LEASE_MS,
                                                  "FROM", *QUEUES)
                    except CONN_ERRORS:
                        self.counts["lease_no_reply"] += 1
                        self._pause()
                        continue
                    except redis.ResponseError as e:
                        if not str(e).startswith("LOADING"):
                            self.error(f"LEASE ... FROM {' '.join(QUEUES)}: got -{e}")
                        self._pause()
                        continue
                    t_recv = time.monotonic()
                    for task in reply:
                        held.append(self.record_delivery(task, t_sent, t_recv, "load"))
                    continue
                d = held.popleft()
                x = rng.random()
                if x < 0.03:
                    self.counts["dropped"] += 1          # the worker "died": never settled
                elif x < 0.05:
                    late.append((d.t_recv + LEASE_S + STALE_SLACK_S + 0.2, d))
                elif x < 0.08:
                    self._settle(r, idx, d, "fail")
                elif x < 0.10:
                    self._settle(r, idx, d, "release")
                else:
                    if rng.random() < 0.1:
                        time.sleep(rng.uniform(0, 0.05))  # some work
                    self._settle(r, idx, d, "ack")
        finally:
            r.close()

    def record_delivery(self, task, t_sent, t_recv, phase):
        task = fields(task)
        d = Delivery(task, t_sent, t_recv, phase)
        with self.lock:
            self.deliveries.append(d)
            if d.id in self.attempted and (task["queue"], task["payload"]) != task_for(d.id):
                self.wrong_payload.append((d.id, task["queue"], task["payload"][:60]))
        return d

    def _settled(self, kind):
        """Counts an ACK that did or may have ended its task (for the producers' backlog)."""
        if kind == "ack":
            with self.lock:
                self.counts["settled"] += 1

    def _settle(self, r, idx, d, kind):
        tag = f"{kind}:w{idx}:{d.lease}"
        command = {"ack": ("ACK", d.lease, tag),
                   "fail": ("FAIL", d.lease, tag, "RETRY", 0),
                   "release": ("RELEASE", d.lease)}[kind]
        expected = {"ack": 1, "fail": "retry", "release": 1}[kind]
        s = Settle(d, kind, tag)
        d.settle = s
        with self.lock:
            self.settles.append(s)
        s.t_first_sent = time.monotonic()
        while True:
            t_sent = time.monotonic()
            try:
                reply = r.execute_command(*command)
            except CONN_ERRORS:
                if s.unknown_at is None:
                    s.unknown_at = time.monotonic()
                # Retry the same lease after reconnecting while it may still be running.
                if self.stop.is_set() or time.monotonic() > d.t_recv + LEASE_S + 0.4:
                    s.outcome = "unknown"
                    s.t_end = time.monotonic()
                    self._settled(kind)
                    return
                self._pause()
                continue
            except redis.ResponseError as e:
                text = str(e)
                if text.startswith("LOADING") and not self.stop.is_set():
                    self._pause()
                    continue
                s.t_last_sent, s.t_done, s.reply = t_sent, time.monotonic(), "-" + text
                s.t_end = s.t_done
                if text.startswith("LEASELOST"):
                    s.outcome = "unknown" if s.unknown_at is not None else "leaselost"
                    if s.outcome == "unknown":
                        self._settled(kind)
                else:
                    s.outcome = "error"
                    self.error(f"{' '.join(map(str, command))}: got -{text}")
                return
            s.t_last_sent, s.t_done, s.reply = t_sent, time.monotonic(), reply
            s.t_end = s.t_done
            if reply == expected:
                s.outcome = "ok"
                self._settled(kind)
            else:
                s.outcome = "error"
                self.error(f"{' '.join(map(str, command))}: expected {expected!r}, "
                           f"got {reply!r}")
            return


class CrashUnderLoadTest(ConveyorTestCase):
    """T1: kill -9 at random moments under enqueue + lease + ack, then drain and check."""

    start_server = False
    case_timeout = (SOAK_SECONDS or 30.0) + 120.0

    def test_kill9_under_load_fsync_always(self):
        self.run_crash_test("always", load_seconds=SOAK_SECONDS or 22.0)

    def test_kill9_under_load_fsync_everysec(self):
        self.run_crash_test("everysec", load_seconds=SOAK_SECONDS or 10.0)

    def test_power_loss_under_load_fsync_always(self):
        os.environ["CONVEYOR_DEBUG_TRACK_SYNCS"] = "1"
        self.addCleanup(os.environ.pop, "CONVEYOR_DEBUG_TRACK_SYNCS", None)
        self.run_crash_test("always", load_seconds=SOAK_SECONDS or 12.0, power_loss=True)

    @staticmethod
    def drop_unsynced(server, rng):
        """After a kill -9: cut every tracked log file somewhere between the end of what its
        last fsync made durable and its current end. Returns the bytes of records dropped
        (not counting the zeros of the space ahead)."""
        dropped = 0
        for name in os.listdir(server.data_dir):
            if not name.endswith(".synced"):
                continue
            path = os.path.join(server.data_dir, name[:-len(".synced")])
            with open(os.path.join(server.data_dir, name)) as f:
                text = f.read().strip()
            if not os.path.exists(path) or not text:
                continue
            durable = int(text)
            size = os.path.getsize(path)
            if size <= durable:
                continue
            cut = durable if rng.random() < 0.5 else rng.randint(durable, size)
            with open(path, "rb") as f:
                f.seek(cut)
                tail = f.read().rstrip(b"\0")  # what follows is zero-filled space ahead
            os.truncate(path, cut)
            dropped += len(tail)
        return dropped

    def run_crash_test(self, fsync, load_seconds, power_loss=False):
        seed = os.environ.get("CONVEYOR_CRASH_SEED") or str(random.SystemRandom().randrange(10**9))
        label = f"fsync {fsync}{', power loss' if power_loss else ''}, seed {seed}"
        sys.stderr.write(f"\n[crash test] {label}, load {load_seconds:.0f} s "
                         f"(replay: CONVEYOR_CRASH_SEED={seed})\n")
        extra = ("--enable-debug-command", "yes") if power_loss else ()
        server = start_restartable(self, "--fsync", fsync, *extra)
        self.assertEqual(info_section(server, "persistence").get("log_fsync"), fsync)
        rng = random.Random(f"{seed}-killer")
        load = Load(server, seed)
        self.addCleanup(load.stop.set)
        started = time.monotonic()
        load.start()

        kills = 0
        dropped_bytes = 0
        while kills < MIN_KILLS or time.monotonic() - started < load_seconds:
            time.sleep(rng.uniform(0.1, 1.0) if rng.random() < 0.85 else rng.uniform(0, 0.1))
            self.assertFalse(load.errors, f"{label}: {load.errors[:5]}")
            if power_loss:
                server.kill9()
                kills += 1
                dropped_bytes += self.drop_unsynced(server, rng)
                server.restart(bind_wait=10.0)
            elif rng.random() < 0.15:
                server.kill9()  # stay down a while: clients keep failing to reconnect
                kills += 1
                time.sleep(rng.uniform(0, 0.6))
                server.restart(bind_wait=10.0)
            else:
                server.restart(signal.SIGKILL, bind_wait=10.0)
                kills += 1
        load_time = time.monotonic() - started
        if power_loss:
            sys.stderr.write(f"[crash test] {label}: {dropped_bytes} bytes of unsynced records dropped "
                             f"over {kills} power losses\n")
        stuck = load.finish()
        self.assertEqual(stuck, [], f"{label}: load threads did not stop")
        self.assertFalse(load.errors, f"{label}: {load.errors[:5]}")

        code = server.restart(signal.SIGTERM)
        self.assertEqual(code, 0, f"{label}: clean stop after the crashes exited {code}")
        drain_started = time.monotonic()
        self.drain(server, load, label)
        drain_time = time.monotonic() - drain_started
        self.check_history(server, load, kills, label, load_time, drain_time)

    def drain(self, server, load, label):
        """Leases until every queue is empty and no lease is outstanding, acking each task."""
        r = server.client(timeout=10.0)
        self.addCleanup(r.close)
        deadline = time.monotonic() + LEASE_S + 30.0
        while True:
            t_sent = time.monotonic()
            reply = r.execute_command("LEASE", "COUNT", 1000, "FOR", DRAIN_LEASE_MS,
                                      "FROM", *QUEUES)
            t_recv = time.monotonic()
            for task in reply:
                d = load.record_delivery(task, t_sent, t_recv, "drain")
                s = Settle(d, "ack", f"drain:{d.lease}")
                d.settle = s
                load.settles.append(s)
                s.t_first_sent = s.t_last_sent = time.monotonic()
                s.reply = r.execute_command("ACK", d.lease, s.tag)
                s.t_done = s.t_end = time.monotonic()
                s.outcome = "ok" if s.reply == 1 else "error"
                self.assertEqual(s.reply, 1, f"{label}: drain ACK {d.lease} of {d.id}")
            if reply:
                continue
            counts = queue_counts(server)
            busy = {q: c for q, c in counts.items()
                    if q in QUEUES and (c.get("ready") or c.get("delayed") or c.get("leased"))}
            if not busy:
                return
            self.assertLess(time.monotonic(), deadline,
                            f"{label}: drain did not finish; INFO queues: {counts}")
            time.sleep(0.05)

    def check_history(self, server, load, kills, label, load_time, drain_time):
        r = server.client(timeout=30.0)
        self.addCleanup(r.close)
        ids = sorted(load.attempted)
        final = {}
        for i in range(0, len(ids), 500):
            pipe = r.pipeline(transaction=False)
            for task_id in ids[i:i + 500]:
                pipe.execute_command("TASK", task_id)
            for task_id, reply in zip(ids[i:i + 500], pipe.execute()):
                if reply is not None:
                    reply = fields(reply)
                    reply = (reply.get("state"), reply.get("result"))
                final[task_id] = reply

        by_id = collections.defaultdict(list)
        for d in load.deliveries:
            by_id[d.id].append(d)
        settles_by_id = collections.defaultdict(list)
        for s in load.settles:
            settles_by_id[s.delivery.id].append(s)

        acked = {s.delivery.id for s in load.settles
                 if s.kind == "ack" and s.outcome == "ok" and s.delivery.phase == "load"}
        drained = {d.id for d in load.deliveries if d.phase == "drain"}
        unexpected = sorted(set(by_id) - load.attempted)
        wrong_payload = load.wrong_payload

        problems = collections.defaultdict(list)
        acked_unknown_effective = set()
        for task_id in ids:
            info = final[task_id]  # (state, result) or None
            delivered = by_id.get(task_id, [])
            if info is None:
                if task_id in load.enqueued_ok:
                    problems["lost (TASK is nil)"].append(task_id)
                elif delivered:
                    problems["delivered, then forgotten (TASK is nil)"].append(task_id)
                continue
            if info[0] != "succeeded":
                problems["not finished after the drain"].append((task_id, info[0]))
                continue
            ok_acks = [s for s in settles_by_id[task_id] if s.kind == "ack" and s.outcome == "ok"]
            if len(ok_acks) > 1:
                problems["acked twice with +1 (a delivery after a successful ACK)"].append(
                    (task_id, [s.tag for s in ok_acks]))
            effective = [s for s in settles_by_id[task_id]
                         if s.kind == "ack" and s.tag == info[1]]
            if not effective or effective[0].outcome not in ("ok", "unknown"):
                problems["result is not from an ACK that succeeded or may have"].append(
                    (task_id, info[1],
                     [(s.tag, s.outcome) for s in settles_by_id[task_id]]))
                continue
            eff = effective[0]
            if ok_acks and eff is not ok_acks[0]:
                problems["result is not that of the ACK that replied 1"].append(
                    (task_id, info[1], ok_acks[0].tag))
            if eff.outcome == "unknown" and task_id not in acked and task_id not in drained:
                acked_unknown_effective.add(task_id)
            # The ACK took effect by the time its reply came (or, when its outcome is
            # unknown, by the time the worker stopped trying): no LEASE sent after that may
            # deliver the task again.
            took_effect_by = eff.t_done if eff.outcome == "ok" else eff.t_end
            after = [d for d in delivered if d.t_sent > took_effect_by]
            if after:
                problems["delivered after its ACK took effect"].append(
                    (task_id, eff.tag, [(d.lease, d.phase) for d in after]))
            # Attempts never go back: each delivery is a later attempt than the one before,
            # except after a RELEASE (the attempt is given back).
            ordered = sorted(delivered, key=lambda d: d.t_recv)
            for a, b in zip(ordered, ordered[1:]):
                released = (a.settle is not None and a.settle.kind == "release"
                            and a.settle.outcome in ("ok", "unknown"))
                if b.attempt < a.attempt or (b.attempt == a.attempt and not released):
                    problems["attempt counter went back"].append(
                        (task_id, a.attempt, b.attempt, a.settle and a.settle.kind))

        lost = sorted(load.enqueued_ok - acked - drained - acked_unknown_effective)
        for s in load.settles:
            d = s.delivery
            lease_s = DRAIN_LEASE_MS / 1000.0 if d.phase == "drain" else LEASE_S
            if s.outcome == "ok" and s.t_last_sent > d.t_recv + lease_s + STALE_SLACK_S:
                problems["stale lease accepted (sent after the lease ended)"].append(
                    (s.kind, d.id, d.lease, round(s.t_last_sent - d.t_recv, 3)))
            if s.outcome == "leaselost" and s.t_done < d.t_sent + lease_s - EARLY_SLACK_S:
                problems["LEASELOST before the lease could have ended"].append(
                    (s.kind, d.id, d.lease, round(s.t_done - d.t_sent, 3)))
        for q in QUEUES:
            dead = r.execute_command("DEAD", q)
            if dead:
                problems[f"dead letters in {q} (RETRIES 10000)"].extend(dead)

        deliveries = len(load.deliveries)
        duplicates = deliveries - len(by_id)
        outcomes = collections.Counter(f"{s.kind}:{s.outcome}" for s in load.settles
                                       if s.delivery.phase == "load")
        summary = (
            f"[crash test] {label}: kills={kills} load={load_time:.1f}s "
            f"drain={drain_time:.1f}s | attempted={len(load.attempted)} "
            f"enqueued_acknowledged={len(load.enqueued_ok)} "
            f"enqueue_no_reply={load.counts['enqueue_no_reply']} acked={len(acked)} "
            f"acked_unknown_but_effective={len(acked_unknown_effective)} "
            f"delivered_in_drain={len(drained)} deliveries={deliveries} "
            f"duplicates={duplicates} lost={len(lost)} unexpected={len(unexpected)} "
            f"wrong_payload={len(wrong_payload)} lease_no_reply={load.counts['lease_no_reply']} "
            f"dropped={load.counts['dropped']} settles={dict(sorted(outcomes.items()))}")
        sys.stderr.write(summary + "\n")

        self.assertGreaterEqual(kills, MIN_KILLS)
        self.assertGreater(len(acked), 100, f"{label}: too little work got done: {summary}")
        self.assertEqual(lost, [], f"{label}: acknowledged ENQUEUEs lost "
                                   f"(first 20 of {len(lost)}): {lost[:20]}\n{summary}")
        self.assertEqual(unexpected, [], f"{label}: delivered but never sent: "
                                         f"{unexpected[:20]}\n{summary}")
        self.assertEqual(wrong_payload, [], f"{label}: payload or queue changed: "
                                            f"{wrong_payload[:10]}\n{summary}")
        self.assertFalse(problems, f"{label}: " + "\n".join(
            f"{k} ({len(v)}): {v[:10]}" for k, v in problems.items()) + f"\n{summary}")
        self.assertFalse(load.errors, f"{label}: {load.errors[:5]}")


# ---- T8: a poison task across broker restarts -------------------------------------------

class PoisonTaskTest(ConveyorTestCase):
    start_server = False
    case_timeout = 60.0

    def test_task_that_kills_its_worker_is_dead_lettered_after_retries_plus_one(self):
        server = start_restartable(self)
        r = server.client()
        self.addCleanup(r.close)
        retries, lease_ms = 2, 600
        task_id = enqueue(r, "poison", "crash-me", "ID", "poison-1", "RETRIES", retries,
                          "NAME", "segfault")
        deliveries = 0
        for attempt in range(1, retries + 2):
            # A new worker each time, which leases the task and dies (its connection drops).
            with server.raw() as worker:
                t = None
                deadline = time.monotonic() + 5.0
                while t is None:
                    reply = worker.command("LEASE", "FOR", lease_ms, "FROM", "poison")
                    self.assertIsInstance(reply, list, reply)
                    if reply:
                        t = {k.decode(): v for k, v in fields(reply[0]).items()}
                    else:
                        self.assertLess(time.monotonic(), deadline,
                                        f"delivery {attempt} did not come")
                        time.sleep(0.02)
            deliveries += 1
            self.assertEqual(t["id"], task_id.encode())
            self.assertEqual(t["payload"], b"crash-me")
            self.assertEqual(int(t["attempt"]), attempt, "attempt counter after restarts")
            if attempt == 2:
                # Crash the broker after the lease ran out (the task is back in its queue).
                info = wait_state(r, task_id, "queued", 5.0)
                self.assertEqual(int(info["attempt"]), 2)
            server.restart(signal.SIGKILL)  # else: crash while the lease runs
            info = task_info(r, task_id)
            self.assertIsNotNone(info, "task forgotten by a kill -9")
            self.assertEqual(int(info["attempt"]), attempt, f"after restart: {info}")
            self.assertIn(info["state"], ("leased", "queued", "dead"), info)

        info = wait_state(r, task_id, "dead", 5.0)
        self.assertEqual(int(info["attempt"]), retries + 1)
        self.assertIn("lease expired", (info["error"] or "").lower())
        self.assertEqual(r.execute_command("DEAD", "poison"), [task_id])
        with self.assertRaisesRegex(redis.ResponseError, "^FAILED"):
            r.execute_command("RESULT", task_id)
        self.assertEqual(deliveries, retries + 1)

        # Dead stays dead across a crash and a clean restart: no further delivery.
        for sig in (signal.SIGKILL, signal.SIGTERM):
            server.restart(sig)
            info = task_info(r, task_id)
            self.assertEqual((info["state"], int(info["attempt"])), ("dead", retries + 1),
                             f"after restart with signal {sig}: {info}")
            self.assertEqual(r.execute_command("DEAD", "poison"), [task_id])
            self.assertEqual(lease(r, "poison", block=lease_ms + 300), [],
                             "a dead task was delivered again")
            self.assertEqual(r.execute_command("QLEN", "poison"), 0)

        # REQUEUE resets the attempts, durably.
        self.assertEqual(r.execute_command("REQUEUE", task_id), 1)
        server.restart(signal.SIGKILL)
        self.assertEqual(r.execute_command("DEAD", "poison"), [])
        t = lease_one(r, "poison")
        self.assertEqual((t["id"], int(t["attempt"])), (task_id, 1))

    def test_failing_worker_counts_attempts_across_kills(self):
        """The same with FAIL (a worker that reports its crash): the retry count is durable."""
        server = start_restartable(self)
        r = server.client()
        self.addCleanup(r.close)
        task_id = enqueue(r, "poison", "p", "RETRIES", 3, "BACKOFF", 10, 20)
        for attempt in range(1, 5):
            t = wait_for_lease(r, "poison", timeout=5.0)
            self.assertEqual((t["id"], int(t["attempt"])), (task_id, attempt))
            server.restart(signal.SIGKILL)
            self.assertEqual(r.execute_command("FAIL", t["lease"], f"crash {attempt}"),
                             "dead" if attempt == 4 else "retry")
            server.restart(signal.SIGKILL)
        info = task_info(r, task_id)
        self.assertEqual((info["state"], int(info["attempt"]), info["error"]),
                         ("dead", 4, "crash 4"))
        self.assertEqual(r.execute_command("DEAD", "poison"), [task_id])


# ---- restart basics ---------------------------------------------------------------------

class RestartTest(ConveyorTestCase):
    start_server = False
    case_timeout = 40.0

    def make_every_state(self, r):
        r.execute_command("ENQUEUE", "rs_queued", "queued-payload", "ID", "queued-1",
                          "NAME", "n1", "PRIORITY", 7)
        enqueue(r, "rs_leased", "leased-payload", "ID", "leased-1")
        leased = lease_one(r, "rs_leased", for_ms=30000)
        enqueue(r, "rs_delayed", "delayed-payload", "ID", "delayed-1", "DELAY", 60000)
        enqueue(r, "rs_dead", "dead-payload", "ID", "dead-1", "RETRIES", 0)
        self.assertEqual(r.execute_command("FAIL", lease_one(r, "rs_dead")["lease"], "boom"),
                         "dead")
        enqueue(r, "rs_done", "done-payload", "ID", "done-1")
        self.assertEqual(r.execute_command("ACK", lease_one(r, "rs_done")["lease"],
                                           "the result"), 1)
        enqueue(r, "rs_cancel", "c", "ID", "cancel-1")
        self.assertEqual(r.execute_command("CANCEL", "cancel-1"), 1)
        generated = enqueue(r, "rs_gen", "generated-payload")
        return leased, generated

    def check_every_state_survives(self, sig):
        server = start_restartable(self)
        r = server.client()
        self.addCleanup(r.close)
        leased, generated = self.make_every_state(r)
        ids = ["queued-1", "leased-1", "delayed-1", "dead-1", "done-1", "cancel-1", generated]
        before = {i: task_info(r, i) for i in ids}
        code = server.restart(sig)
        if sig == signal.SIGTERM:
            self.assertEqual(code, 0)
        for i in ids:
            after = task_info(r, i)
            self.assertIsNotNone(after, f"{i} forgotten")
            b, a = dict(before[i]), dict(after)
            b.pop("updated_ms")
            a.pop("updated_ms")
            self.assertEqual(a, b, f"TASK {i} changed across the restart")
        self.assertEqual(task_info(r, "leased-1")["state"], "leased")
        self.assertEqual(task_info(r, "delayed-1")["state"], "delayed")
        self.assertEqual(task_info(r, "dead-1")["state"], "dead")
        self.assertEqual(r.execute_command("QLEN", "rs_queued"), 1)
        self.assertEqual(r.execute_command("QLEN", "rs_delayed"), 0)
        self.assertEqual(r.execute_command("DEAD", "rs_dead"), ["dead-1"])
        self.assertEqual(r.execute_command("RESULT", "done-1"), "the result")
        with self.assertRaisesRegex(redis.ResponseError, "^FAILED boom"):
            r.execute_command("RESULT", "dead-1")
        with self.assertRaisesRegex(redis.ResponseError, "^CANCELLED"):
            r.execute_command("RESULT", "cancel-1")
        # Idempotent IDs still known; generated ids stay unique across restarts.
        self.assertEqual(enqueue(r, "rs_queued", "again", "ID", "done-1"), "done-1")
        self.assertEqual(r.execute_command("QLEN", "rs_queued"), 1)
        new_id = enqueue(r, "rs_gen", "after-restart")
        self.assertNotEqual(new_id, generated)
        # The lease survived with its token.
        self.assertEqual(r.execute_command("EXTEND", leased["lease"], 30000), 1)
        self.assertEqual(r.execute_command("ACK", leased["lease"], "late but valid"), 1)
        self.assertEqual(r.execute_command("RESULT", "leased-1"), "late but valid")
        t = lease_one(r, "rs_queued")
        self.assertEqual((t["id"], t["payload"], t["name"], int(t["attempt"]),
                          int(t["priority"])), ("queued-1", "queued-payload", "n1", 1, 7))
        self.assertEqual(lease(r, "rs_delayed"), [], "a delayed task became ready early")
        self.assertEqual(r.execute_command("REQUEUE", "dead-1"), 1)
        self.assertEqual(lease_one(r, "rs_dead")["id"], "dead-1")
        t = lease_one(r, "rs_gen")
        self.assertEqual((t["id"], t["payload"]), (generated, "generated-payload"))
        # And once more: the changes made after the first restart are durable too.
        server.restart(sig)
        self.assertEqual(task_info(r, "leased-1")["state"], "succeeded")
        self.assertEqual(task_info(r, "queued-1")["state"], "leased")
        self.assertEqual(task_info(r, "dead-1")["state"], "leased")
        self.assertEqual(task_info(r, new_id)["state"], "queued")

    def test_every_state_survives_a_clean_restart(self):
        self.check_every_state_survives(signal.SIGTERM)

    def test_every_state_survives_kill9(self):
        self.check_every_state_survives(signal.SIGKILL)

    def test_lease_keeps_its_remaining_time_across_kill9_and_downtime(self):
        server = start_restartable(self)
        r = server.client()
        self.addCleanup(r.close)
        task_id = enqueue(r, "rs_lease", "p")
        t_sent = time.monotonic()
        t = lease_one(r, "rs_lease", for_ms=2500)
        t_recv = time.monotonic()
        server.kill9()
        time.sleep(1.0)  # down for 1 s: that time counts against the lease
        server.restart()
        self.assertEqual(task_info(r, task_id)["state"], "leased")

        def back_in_queue():
            return task_info(r, task_id)["state"] == "queued"
        wait_until(back_in_queue, 5.0, interval=0.01, message="the lease to end")
        t_back = time.monotonic()
        self.assertGreaterEqual(t_back, t_sent + 2.5 - 0.1, "lease cut short by the restart")
        self.assertLessEqual(t_back, t_recv + 2.5 + 1.0,
                             "lease lengthened by the downtime (or not expired in time)")
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", t["lease"])
        t2 = lease_one(r, "rs_lease")
        self.assertEqual((t2["id"], int(t2["attempt"])), (task_id, 2))

    def test_ack_with_old_lease_token_after_kill9_within_lease(self):
        server = start_restartable(self)
        r = server.client()
        self.addCleanup(r.close)
        ids = [enqueue(r, "rs_ack", f"p{i}") for i in range(3)]
        tasks = lease(r, "rs_ack", count=3, for_ms=5000)
        self.assertEqual(len(tasks), 3)
        server.restart(signal.SIGKILL)
        self.assertEqual(r.execute_command("ACK", tasks[0]["lease"], "r0"), 1)
        self.assertEqual(r.execute_command("FAIL", tasks[1]["lease"], "e1", "NORETRY"), "dead")
        self.assertEqual(r.execute_command("RELEASE", tasks[2]["lease"]), 1)
        server.restart(signal.SIGKILL)
        self.assertEqual(task_info(r, ids[0])["state"], "succeeded")
        self.assertEqual(r.execute_command("RESULT", ids[0]), "r0")
        self.assertEqual(task_info(r, ids[1])["state"], "dead")
        t = lease_one(r, "rs_ack")
        self.assertEqual((t["id"], int(t["attempt"])), (ids[2], 1), "RELEASE gave it back")
        for old in tasks:
            with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
                r.execute_command("ACK", old["lease"])

    def test_info_persistence_names_the_fsync_mode(self):
        for mode in (None, "always", "everysec", "no"):
            with self.subTest(fsync=mode):
                server = start_restartable(self, *(("--fsync", mode) if mode else ()))
                expected = mode or "always"
                info = info_section(server, "persistence")
                self.assertEqual(info.get("persistence_mode"), "log", info)
                self.assertEqual(info.get("log_fsync"), expected, info)
                # Every mode writes to the OS before replying: kill -9 loses nothing.
                r = server.client()
                self.addCleanup(r.close)
                pipe = r.pipeline(transaction=False)
                for i in range(300):
                    pipe.execute_command("ENQUEUE", "rs_modes", f"p{i}")
                self.assertEqual(len(set(pipe.execute())), 300)
                server.restart(signal.SIGKILL)
                self.assertEqual(r.execute_command("QLEN", "rs_modes"), 300)
                self.assertEqual(info_section(server, "persistence").get("log_fsync"),
                                 expected)
                server.stop()

    def test_unknown_fsync_mode_is_refused(self):
        port = free_port_outside_ephemeral_range()
        workdir = tempfile.mkdtemp(prefix="conveyor-it-")
        self.addCleanup(shutil.rmtree, workdir, True)
        code, out = run_conveyor("server", "--port", port, "--bind", "127.0.0.1",
                                 "--data-dir", os.path.join(workdir, "other"),
                                 "--fsync", "sometimes")
        self.assertNotEqual(code, 0, out)
        self.assertIsNotNone(code, "still running: " + out)
        self.assertIn("fsync", out.lower())


if __name__ == "__main__":
    unittest.main()
