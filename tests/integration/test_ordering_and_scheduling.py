"""Delivery order (priority, FIFO, queue order) and time: DELAY, AT, TTL. A delay never causes
a redelivery by itself."""

import time
import unittest

from harness import ConveyorTestCase, enqueue, lease, lease_one, task_info, wait_for_lease


class OrderingTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def test_fifo_within_a_queue(self):
        r = self.client()
        for i in range(50):
            enqueue(r, "fifo", f"p{i:02d}")
        got = [t["payload"] for t in lease(r, "fifo", count=20)]
        got += [lease_one(r, "fifo")["payload"] for _ in range(30)]
        self.assertEqual(got, [f"p{i:02d}" for i in range(50)])

    def test_higher_priority_first_then_fifo(self):
        r = self.client()
        spec = [("a", 0), ("b", 9), ("c", 5), ("d", 9), ("e", 0), ("f", 5), ("g", 1)]
        for payload, prio in spec:
            enqueue(r, "prio", payload, "PRIORITY", prio)
        order = [t["payload"] for t in lease(r, "prio", count=10)]
        self.assertEqual(order, ["b", "d", "c", "f", "g", "a", "e"])

    def test_priority_is_reported(self):
        r = self.client()
        task_id = enqueue(r, "prio", "p", "PRIORITY", 7)
        self.assertEqual(int(task_info(r, task_id)["priority"]), 7)

    def test_queues_served_in_order_listed(self):
        r = self.client()
        enqueue(r, "low", "l1")
        enqueue(r, "high", "h1")
        enqueue(r, "high", "h2")
        got = [(t["queue"], t["payload"]) for t in lease(r, "high", "low", count=3)]
        self.assertEqual(got, [("high", "h1"), ("high", "h2"), ("low", "l1")])
        enqueue(r, "low", "l2")
        enqueue(r, "high", "h3")
        self.assertEqual(lease_one(r, "low", "high")["payload"], "l2")

    def test_redelivered_task_keeps_its_place_by_priority(self):
        r = self.client()
        enqueue(r, "q", "normal")
        enqueue(r, "q", "urgent", "PRIORITY", 9)
        t = lease_one(r, "q")
        self.assertEqual(t["payload"], "urgent")
        r.execute_command("RELEASE", t["lease"])
        self.assertEqual(lease_one(r, "q")["payload"], "urgent")


class SchedulingTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "300")

    def test_delay_holds_task_until_due(self):
        r = self.client()
        start = time.monotonic()
        task_id = enqueue(r, "q", "later", "DELAY", 400)
        self.assertEqual(task_info(r, task_id)["state"], "delayed")
        self.assertEqual(r.execute_command("QLEN", "q"), 0)
        self.assertEqual(lease(r, "q"), [])
        t = wait_for_lease(r, "q", timeout=3.0, for_ms=5000)
        self.assertGreaterEqual(time.monotonic() - start, 0.39, "delivered before its delay")
        self.assertEqual(t["id"], task_id)
        self.assertEqual(int(t["attempt"]), 1)

    def test_at_unix_ms_holds_task_until_then(self):
        r = self.client()
        start = time.monotonic()
        due = int(time.time() * 1000) + 400
        task_id = enqueue(r, "q", "at", "AT", due)
        self.assertEqual(task_info(r, task_id)["state"], "delayed")
        wait_for_lease(r, "q", timeout=3.0, for_ms=5000)
        self.assertGreaterEqual(time.monotonic() - start, 0.3)

    def test_at_in_the_past_is_ready_at_once(self):
        r = self.client()
        enqueue(r, "q", "past", "AT", int(time.time() * 1000) - 60000)
        self.assertEqual(lease_one(r, "q", for_ms=5000)["payload"], "past")

    def test_delayed_task_wakes_a_blocked_leaser(self):
        r = self.client()
        start = time.monotonic()
        enqueue(r, "q", "soon", "DELAY", 300)
        tasks = lease(r, "q", block=3000, for_ms=5000)
        elapsed = time.monotonic() - start
        self.assertEqual([t["payload"] for t in tasks], ["soon"])
        self.assertGreaterEqual(elapsed, 0.29)
        self.assertLess(elapsed, 1.5)

    def test_delay_longer_than_lease_never_causes_redelivery(self):
        # The Celery + Redis visibility-timeout bug: an ETA longer than the visibility
        # timeout made the task run twice. Lease 300 ms, delay 700 ms.
        r = self.client()
        task_id = enqueue(r, "q", "eta", "DELAY", 700)
        t = wait_for_lease(r, "q", timeout=3.0, for_ms=2000)
        self.assertEqual(int(t["attempt"]), 1)
        time.sleep(0.5)  # beyond the default lease, inside FOR
        self.assertEqual(lease(r, "q"), [], "delivered twice")
        self.assertEqual(r.execute_command("ACK", t["lease"]), 1)
        time.sleep(0.4)
        self.assertEqual(lease(r, "q"), [])
        self.assertEqual(int(task_info(r, task_id)["attempt"]), 1)
        self.assertEqual(r.info("stats")["tasks_leased"], 1)
        self.assertEqual(r.info("stats")["tasks_expired"], 0)

    def test_ttl_expired_before_lease_is_never_delivered(self):
        r = self.client()
        task_id = enqueue(r, "q", "stale", "TTL", 200)
        time.sleep(0.35)
        self.assertEqual(lease(r, "q"), [])
        self.assertEqual(r.execute_command("QLEN", "q"), 0)
        self.assertEqual(task_info(r, task_id)["state"], "dead")

    def test_ttl_does_not_touch_a_task_leased_in_time(self):
        r = self.client()
        task_id = enqueue(r, "q", "fresh", "TTL", 200)
        t = lease_one(r, "q", for_ms=3000)
        time.sleep(0.35)
        self.assertEqual(r.execute_command("ACK", t["lease"], "ok"), 1)
        self.assertEqual(task_info(r, task_id)["state"], "succeeded")


if __name__ == "__main__":
    unittest.main()
