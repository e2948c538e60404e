"""Blocking commands are woken by other connections, are served first come first served, time
out when asked to, and block only their own connection."""

import concurrent.futures
import time
import unittest

import redis

from harness import ConveyorTestCase, enqueue, lease, lease_one, task_info


class BlockingCommandsTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def setUp(self):
        super().setUp()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
        self.addCleanup(self.pool.shutdown, wait=False, cancel_futures=True)

    def in_background(self, fn, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def wait_blocked(self, r, count):
        """Waits until `count` clients are blocked, using INFO clients' blocked_clients when
        the server reports it, else a short grace. Used to order blocked clients."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            info = r.info("clients")
            if "blocked_clients" not in info:
                time.sleep(0.25)
                return
            if info["blocked_clients"] >= count:
                return
            time.sleep(0.01)
        # blocked_clients did not count our waiter (it may count BLPOP only): carry on.

    def test_lease_block_is_woken_by_enqueue_from_another_connection(self):
        blocked, producer = self.client(), self.client()
        start = time.monotonic()
        future = self.in_background(lease, blocked, "wake_q", block=5000)
        self.wait_blocked(producer, 1)
        self.assertFalse(future.done(), "LEASE BLOCK returned before any task existed")
        task_id = enqueue(producer, "wake_q", "hello")
        tasks = future.result(timeout=3)
        self.assertEqual([t["id"] for t in tasks], [task_id])
        self.assertLess(time.monotonic() - start, 4.0, "woken by the enqueue, not the timeout")
        self.assertEqual(producer.execute_command("ACK", tasks[0]["lease"]), 1)

    def test_lease_block_zero_waits_until_a_task_arrives(self):
        blocked, producer = self.client(), self.client()
        future = self.in_background(lease, blocked, "forever_q", block=0)
        time.sleep(0.3)
        self.assertFalse(future.done())
        enqueue(producer, "forever_q", "finally")
        self.assertEqual([t["payload"] for t in future.result(timeout=3)], ["finally"])

    def test_lease_block_times_out_with_empty_array(self):
        r = self.client()
        start = time.monotonic()
        self.assertEqual(lease(r, "quiet_q", block=300), [])
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.29)
        self.assertLess(elapsed, 2.0)

    def test_lease_block_on_several_queues_is_woken_by_any(self):
        blocked, producer = self.client(), self.client()
        future = self.in_background(lease, blocked, "q_one", "q_two", block=5000)
        self.wait_blocked(producer, 1)
        enqueue(producer, "q_two", "second queue")
        tasks = future.result(timeout=3)
        self.assertEqual([(t["queue"], t["payload"]) for t in tasks],
                         [("q_two", "second queue")])

    def test_blocked_leasers_are_served_first_come_first_served(self):
        first, second, producer = self.client(), self.client(), self.client()
        f1 = self.in_background(lease, first, "fcfs_q", block=5000)
        self.wait_blocked(producer, 1)
        f2 = self.in_background(lease, second, "fcfs_q", block=5000)
        self.wait_blocked(producer, 2)
        enqueue(producer, "fcfs_q", "one")
        self.assertEqual([t["payload"] for t in f1.result(timeout=3)], ["one"])
        self.assertFalse(f2.done(), "one task woke two leasers")
        enqueue(producer, "fcfs_q", "two")
        self.assertEqual([t["payload"] for t in f2.result(timeout=3)], ["two"])

    def test_lease_block_count_gets_what_is_there(self):
        blocked, producer = self.client(), self.client()
        future = self.in_background(lease, blocked, "count_q", count=5, block=5000)
        self.wait_blocked(producer, 1)
        enqueue(producer, "count_q", "only")
        tasks = future.result(timeout=3)
        self.assertGreaterEqual(len(tasks), 1)
        self.assertEqual(tasks[0]["payload"], "only")

    def test_result_wait_is_woken_by_ack_from_another_connection(self):
        waiter, worker = self.client(), self.client()
        task_id = enqueue(worker, "res_q", "compute")
        future = self.in_background(waiter.execute_command, "RESULT", task_id, "WAIT", 5000)
        time.sleep(0.2)
        self.assertFalse(future.done(), "RESULT WAIT returned before the task finished")
        t = lease_one(worker, "res_q")
        start = time.monotonic()
        self.assertEqual(worker.execute_command("ACK", t["lease"], "42"), 1)
        self.assertEqual(future.result(timeout=3), "42")
        self.assertLess(time.monotonic() - start, 2.0)

    def test_result_wait_zero_waits_forever_until_ack(self):
        waiter, worker = self.client(), self.client()
        task_id = enqueue(worker, "res_q", "compute")
        future = self.in_background(waiter.execute_command, "RESULT", task_id, "WAIT", 0)
        time.sleep(0.3)
        self.assertFalse(future.done())
        worker.execute_command("ACK", lease_one(worker, "res_q")["lease"], "late")
        self.assertEqual(future.result(timeout=3), "late")

    def test_result_wait_times_out_with_nil(self):
        r = self.client()
        task_id = enqueue(r, "res_q", "never done")
        start = time.monotonic()
        self.assertIsNone(r.execute_command("RESULT", task_id, "WAIT", 300))
        self.assertGreaterEqual(time.monotonic() - start, 0.29)

    def test_result_wait_on_finished_task_returns_at_once(self):
        r = self.client()
        task_id = enqueue(r, "res_q", "p")
        r.execute_command("ACK", lease_one(r, "res_q")["lease"], "ready")
        start = time.monotonic()
        self.assertEqual(r.execute_command("RESULT", task_id, "WAIT", 5000), "ready")
        self.assertLess(time.monotonic() - start, 1.0)

    def test_result_wait_is_woken_with_failed_when_task_dies(self):
        waiter, worker = self.client(), self.client()
        task_id = enqueue(worker, "res_q", "doomed")
        future = self.in_background(waiter.execute_command, "RESULT", task_id, "WAIT", 5000)
        time.sleep(0.2)
        worker.execute_command("FAIL", lease_one(worker, "res_q")["lease"], "boom", "NORETRY")
        with self.assertRaisesRegex(redis.ResponseError, "^FAILED"):
            future.result(timeout=3)

    def test_result_wait_is_woken_with_cancelled_when_task_is_cancelled(self):
        waiter, other = self.client(), self.client()
        task_id = enqueue(other, "res_q", "to cancel")
        future = self.in_background(waiter.execute_command, "RESULT", task_id, "WAIT", 5000)
        time.sleep(0.2)
        self.assertEqual(other.execute_command("CANCEL", task_id), 1)
        with self.assertRaisesRegex(redis.ResponseError, "^CANCELLED"):
            future.result(timeout=3)

    def test_blocked_connection_does_not_block_others(self):
        blocked = self.client()
        f_lease = self.in_background(lease, blocked, "idle_q", block=0)
        blocked2 = self.client()
        f_pop = self.in_background(blocked2.blpop, ["idle_list"], 0)
        time.sleep(0.2)
        r = self.client()
        start = time.monotonic()
        for i in range(50):
            self.assertTrue(r.ping())
            enqueue(r, "busy_q", f"p{i}")
            t = lease_one(r, "busy_q")
            self.assertEqual(r.execute_command("ACK", t["lease"]), 1)
        self.assertLess(time.monotonic() - start, 5.0)
        self.assertFalse(f_lease.done())
        self.assertFalse(f_pop.done())
        # Unblock both so the test ends cleanly.
        enqueue(r, "idle_q", "wake")
        r.lpush("idle_list", "wake")
        self.assertEqual(len(f_lease.result(timeout=3)), 1)
        self.assertEqual(f_pop.result(timeout=3), ("idle_list", "wake"))

    def test_task_is_not_lost_to_a_leaser_that_disconnected(self):
        conn = self.raw()
        conn.command("CLIENT", "SETNAME", "gone")
        conn.send(b"*5\r\n$5\r\nLEASE\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$4\r\nFROM\r\n$6\r\ngone_q\r\n")
        time.sleep(0.2)
        conn.close()
        time.sleep(0.2)
        r = self.client()
        task_id = enqueue(r, "gone_q", "must survive")
        t = lease_one(r, "gone_q")
        self.assertEqual(t["id"], task_id)
        self.assertEqual(int(t["attempt"]), 1)
        self.assertEqual(task_info(r, task_id)["state"], "leased")


if __name__ == "__main__":
    unittest.main()
