"""CANCEL in each task state."""

import unittest

import redis

from harness import ConveyorTestCase, enqueue, lease, lease_one, task_info


class CancelTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def assert_cancelled(self, r, task_id, queue):
        self.assertEqual(task_info(r, task_id)["state"], "cancelled")
        with self.assertRaisesRegex(redis.ResponseError, "^CANCELLED"):
            r.execute_command("RESULT", task_id)
        self.assertEqual(lease(r, queue), [])

    def test_cancel_queued_task(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        self.assertEqual(r.execute_command("CANCEL", task_id), 1)
        self.assertEqual(r.execute_command("QLEN", "q"), 0)
        self.assert_cancelled(r, task_id, "q")

    def test_cancel_delayed_task(self):
        r = self.client()
        task_id = enqueue(r, "q", "p", "DELAY", 200)
        self.assertEqual(task_info(r, task_id)["state"], "delayed")
        self.assertEqual(r.execute_command("CANCEL", task_id), 1)
        self.assertEqual(lease(r, "q", block=400), [], "a cancelled delayed task never runs")
        self.assert_cancelled(r, task_id, "q")

    def test_cancel_leased_task_makes_extend_answer_cancelled(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("CANCEL", task_id), 1)
        with self.assertRaisesRegex(redis.ResponseError, "^CANCELLED"):
            r.execute_command("EXTEND", t["lease"], 1000)
        self.assert_cancelled(r, task_id, "q")

    def test_cancel_succeeded_task_is_zero(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        r.execute_command("ACK", lease_one(r, "q")["lease"], "r")
        self.assertEqual(r.execute_command("CANCEL", task_id), 0)
        self.assertEqual(task_info(r, task_id)["state"], "succeeded")
        self.assertEqual(r.execute_command("RESULT", task_id), "r")

    def test_cancel_dead_task_is_zero(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        r.execute_command("FAIL", lease_one(r, "q")["lease"], "e", "NORETRY")
        self.assertEqual(r.execute_command("CANCEL", task_id), 0)
        self.assertEqual(task_info(r, task_id)["state"], "dead")

    def test_cancel_twice_and_unknown_is_zero(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        self.assertEqual(r.execute_command("CANCEL", task_id), 1)
        self.assertEqual(r.execute_command("CANCEL", task_id), 0)
        self.assertEqual(r.execute_command("CANCEL", "unknown-id"), 0)

    def test_cancel_counts_in_stats(self):
        r = self.client()
        for i in range(3):
            r.execute_command("CANCEL", enqueue(r, "q", f"p{i}"))
        self.assertEqual(r.info("stats")["tasks_cancelled"], 3)


if __name__ == "__main__":
    unittest.main()
