"""Disk faults under the log, injected through the storage layer's file_io seam with
`DEBUG LOG-FAULT` (server started with --enable-debug-command yes): docs/reliability.md T3 and T5.

T3: with fsync slowed down, no reply leaves before its record is durable.
T5: a failed write or fsync is never acknowledged; the server stops (exit status 1) with a
    clear message, and a restart recovers every change acknowledged before the fault.
T6: a full disk (DEBUG LOG-FAULT DISK-FULL: writes that would grow a file fail with ENOSPC)
    refuses new tasks with -MISCONF while ACKs and LEASEs of existing tasks go on in the space
    reserved ahead; the server recovers by itself when space returns, and loses nothing.
"""

import os
import threading
import time
import unittest

import redis

from harness import (ConveyorServer, ConveyorTestCase, RespError, fill_disk,
                     mount_tmpfs_data_dir, wait_until)


def task_state(client, task_id):
    """TASK's reply is field/value pairs; the task's state, or None if unknown."""
    reply = client.execute_command("TASK", task_id)
    if reply is None:
        return None
    return dict(zip(reply[::2], reply[1::2]))["state"]


class DiskFaultTest(ConveyorTestCase):
    server_args = ("--enable-debug-command", "yes")
    case_timeout = 60.0

    def restart_same_dir(self, *extra):
        """A new server on the same data directory (the old one has exited)."""
        return self.start_conveyor(*extra, workdir=self.server.workdir)

    def assert_fail_stop(self, fault, mode):
        c = self.client()
        acked = c.execute_command("ENQUEUE", "jobs", "before-fault")
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", fault), "OK")
        with self.assertRaises(redis.ConnectionError):
            c.execute_command("ENQUEUE", "jobs", "during-fault")
        self.assertEqual(self.server.wait_exit(10.0), 1, "the server must exit non-zero")
        self.assertIn("writing the log failed", self.server.log_text())
        self.assertIn("Input/output error", self.server.log_text())

        after = self.restart_same_dir("--fsync", mode)
        c2 = after.client()
        self.addCleanup(c2.close)
        # The acknowledged enqueue survived; the unacknowledged one may or may not have.
        self.assertEqual(task_state(c2, acked), "queued")
        got = c2.execute_command("LEASE", "COUNT", "10", "FROM", "jobs")
        payloads = sorted(dict(zip(t[::2], t[1::2]))["payload"] for t in got)
        self.assertIn("before-fault", payloads)
        self.assertTrue(set(payloads) <= {"before-fault", "during-fault"}, payloads)

    def test_failed_fsync_is_not_acknowledged_and_stops_the_server(self):
        self.assert_fail_stop("EIO-SYNC", "always")

    def test_failed_write_is_not_acknowledged_and_stops_the_server(self):
        self.assert_fail_stop("EIO-WRITE", "always")

    def test_failed_write_under_everysec_is_not_acknowledged(self):
        self.server.stop()
        self.server = self.restart_same_dir("--enable-debug-command", "yes",
                                            "--fsync", "everysec")
        self.assert_fail_stop("EIO-WRITE", "everysec")

    def test_replies_wait_for_a_slow_fsync(self):
        c = self.client()
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "SLOW-SYNC", "400"), "OK")
        pipe = c.pipeline(transaction=False)
        for i in range(20):
            pipe.execute_command("ENQUEUE", "slow", f"p{i}")
        started = time.monotonic()
        ids = pipe.execute()
        elapsed = time.monotonic() - started
        self.assertEqual(len(ids), 20)
        # The whole pipeline shares one (slow) fsync; its replies waited for it.
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "OFF"), "OK")

    def test_kill_during_a_slow_fsync_loses_nothing_acknowledged(self):
        c = self.client()
        first = c.execute_command("ENQUEUE", "slow", "acked")
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "SLOW-SYNC", "3000"), "OK")
        replies = []

        def producer():
            try:
                replies.append(self.server.client().execute_command("ENQUEUE", "slow", "pending"))
            except redis.RedisError as e:
                replies.append(e)

        t = threading.Thread(target=producer)
        t.start()
        time.sleep(0.5)
        # The enqueue is waiting for its fsync: no reply yet.
        self.assertEqual(replies, [])
        self.server.kill_group()
        t.join(10)
        self.assertEqual(len(replies), 1)
        self.assertIsInstance(replies[0], redis.ConnectionError)

        after = self.restart_same_dir()
        c2 = after.client()
        self.addCleanup(c2.close)
        self.assertEqual(task_state(c2, first), "queued")

    def fill_until_refused(self, c, what, limit=20000):
        """ENQUEUEs until one is refused; returns the ids acknowledged and the error text."""
        ids = []
        for i in range(limit):
            try:
                ids.append(c.execute_command("ENQUEUE", "jobs", f"{what}-{i}-" + "x" * 200))
            except redis.ResponseError as e:
                return ids, str(e)
        self.fail(f"{limit} enqueues and none was refused on a full disk")

    def test_full_disk_refuses_new_tasks_keeps_finishing_and_recovers(self):
        self.server.stop()
        self.server = self.restart_same_dir("--enable-debug-command", "yes",
                                            "--log-segment-size", "65536")
        c = self.client()
        before = [c.execute_command("ENQUEUE", "jobs", f"before-{i}") for i in range(30)]
        leased = c.execute_command("LEASE", "COUNT", "20", "FROM", "jobs")
        self.assertEqual(len(leased), 20)
        leases = [dict(zip(t[::2], t[1::2])) for t in leased]

        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "DISK-FULL"), "OK")
        accepted, error = self.fill_until_refused(c, "full")
        self.assertTrue(error.startswith("MISCONF"), error)
        self.assertIn("disk of the data directory is full", error)
        with self.assertRaises(redis.ResponseError) as e:
            c.execute_command("LPUSH", "jobs", "pushed")
        self.assertIn("MISCONF", str(e.exception))
        info = c.info("persistence")
        self.assertEqual(info["log_disk_full"], 1)
        self.assertEqual(info["log_write_status"], "ok")
        self.assertGreater(info["log_space_ahead_bytes"], 0)

        # Work already in the broker goes on: ACK the leases, lease and fail some more.
        for t in leases:
            self.assertEqual(c.execute_command("ACK", t["lease"], "done"), 1)
        more = c.execute_command("LEASE", "COUNT", "5", "FROM", "jobs")
        self.assertEqual(len(more), 5)
        for t in (dict(zip(t[::2], t[1::2])) for t in more):
            self.assertEqual(c.execute_command("FAIL", t["lease"], "boom", "NORETRY"), "dead")
        self.assertEqual(c.execute_command("TASK", before[0])[7], "succeeded")
        self.assertTrue(self.server.is_running())
        self.assertIn("is full", self.server.log_text())

        # Space returns: new tasks are accepted again without a restart.
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "OFF"), "OK")

        def accepts():
            try:
                accepted.append(c.execute_command("ENQUEUE", "jobs", "after"))
                return True
            except redis.ResponseError as e:
                self.assertIn("MISCONF", str(e))
                return False
        wait_until(accepts, 10.0, interval=0.1, message="ENQUEUE accepted again")
        self.assertEqual(c.info("persistence")["log_disk_full"], 0)
        self.assertIn("space is back", self.server.log_text())

        # Nothing acknowledged was lost, through a kill -9 and a restart.
        expected_ready = c.execute_command("QLEN", "jobs")
        self.assertEqual(expected_ready, 30 - 20 - 5 + len(accepted))
        c.close()
        self.server.kill9()
        after = self.restart_same_dir()
        c2 = after.client()
        self.addCleanup(c2.close)
        self.assertEqual(c2.execute_command("QLEN", "jobs"), expected_ready)
        for t in leases:
            self.assertEqual(task_state(c2, t["id"]), "succeeded")
        for task_id in accepted:
            self.assertEqual(task_state(c2, task_id), "queued")
        self.assertEqual(len(c2.execute_command("DEAD", "jobs")), 5)

    def test_reserve_covers_every_task_of_a_burst_right_after_it(self):
        """The finishing reserve follows the tasks as they are added: after a burst, the disk
        fills at once, and every task can still be leased and acked. (With the reserve sampled
        once a second, the burst was not covered: LEASE+ACKs near the end got -MISCONF.)"""
        self.server.stop()
        # 64 KiB segments: 16 KiB kept ahead beyond the reserve, a floor of 4 KiB.
        self.server = self.restart_same_dir("--enable-debug-command", "yes",
                                            "--log-segment-size", "65536")
        c = self.client()
        burst = 230
        pipe = c.pipeline(transaction=False)
        for i in range(burst):
            pipe.execute_command("ENQUEUE", "jobs", f"burst-{i}")
        self.assertEqual(len(pipe.execute()), burst)
        # The burst is acknowledged, so written; the disk fills right after it.
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "DISK-FULL"), "OK")
        accepted, error = self.fill_until_refused(c, "full")
        self.assertTrue(error.startswith("MISCONF"), error)
        self.assertEqual(c.info("persistence")["log_disk_full"], 1)

        refused = []
        for _ in range(burst + len(accepted)):
            try:
                task = c.execute_command("LEASE", "FROM", "jobs")
                lease = dict(zip(task[0][::2], task[0][1::2]))["lease"]
                self.assertEqual(c.execute_command("ACK", lease), 1)
            except redis.ResponseError as e:
                refused.append(str(e))
        self.assertEqual(refused, [], f"{len(refused)} of {burst + len(accepted)} refused")
        self.assertEqual(c.execute_command("QLEN", "jobs"), 0)
        self.assertEqual(c.info("persistence")["log_write_status"], "ok")

    def test_debug_needs_the_flag(self):
        other = self.start_conveyor()
        c = other.client()
        self.addCleanup(c.close)
        with self.assertRaises(redis.ResponseError) as e:
            c.execute_command("DEBUG", "LOG-FAULT", "EIO-SYNC")
        self.assertIn("--enable-debug-command yes", str(e.exception))


class RealFullDiskTest(ConveyorTestCase):
    """T6 on a real file system that runs out of space: the data directory is a 6 MiB tmpfs
    (mounting needs root, which `make test` has: it installs packages with apt-get)."""

    start_server = False
    case_timeout = 90.0

    def setUp(self):
        super().setUp()
        self.workdir, self.data = mount_tmpfs_data_dir(self, "6m", "conveyor-full-")

    def start(self):
        return self.start_conveyor("--log-segment-size", "1048576", workdir=self.workdir)

    def test_enospc_refuses_new_tasks_keeps_acks_and_recovers_when_space_returns(self):
        self.server = self.start()
        c = self.client()
        ids = [c.execute_command("ENQUEUE", "jobs", f"early-{i}") for i in range(200)]
        leased = [dict(zip(t[::2], t[1::2]))
                  for t in c.execute_command("LEASE", "COUNT", "150", "FROM", "jobs")]
        self.assertEqual(len(leased), 150)
        filler = fill_disk(self.data, leave=512 * 1024)

        accepted = []
        error = None
        for i in range(20000):
            try:
                accepted.append(c.execute_command("ENQUEUE", "jobs", f"late-{i}-" + "y" * 1000))
            except redis.ResponseError as e:
                error = str(e)
                break
        self.assertIsNotNone(error, "the disk never filled up")
        self.assertTrue(error.startswith("MISCONF"), error)
        info = c.info("persistence")
        self.assertEqual(info["log_disk_full"], 1)
        self.assertEqual(info["log_write_status"], "ok")
        # Every lease taken before the disk filled can still be acknowledged.
        for t in leased:
            self.assertEqual(c.execute_command("ACK", t["lease"]), 1)
        self.assertTrue(self.server.is_running(), self.server.log_text())

        os.remove(filler)

        def accepts():
            try:
                accepted.append(c.execute_command("ENQUEUE", "jobs", "after"))
                return True
            except redis.ResponseError:
                return False
        wait_until(accepts, 10.0, interval=0.1, message="ENQUEUE accepted once space returned")

        ready = c.execute_command("QLEN", "jobs")
        self.assertEqual(ready, 200 - 150 + len(accepted))
        c.close()
        self.server.kill9()
        self.server = self.start()
        c2 = self.server.client()
        self.addCleanup(c2.close)
        self.assertEqual(c2.execute_command("QLEN", "jobs"), ready)
        for t in leased:
            self.assertEqual(task_state(c2, t["id"]), "succeeded")
        self.assertEqual(task_state(c2, ids[-1]), "queued")


if __name__ == "__main__":
    unittest.main()
