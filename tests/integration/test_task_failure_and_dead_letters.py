"""FAIL with retry and backoff, the retry limit, dead letters, REQUEUE, and RESULT of a dead
task. Poison tasks end."""

import time
import unittest

import redis

from harness import ConveyorTestCase, enqueue, lease, lease_one, task_info, wait_for_lease


class TaskFailureTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def test_fail_with_retry_delay_redelivers_as_next_attempt(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        t = lease_one(r, "q")
        start = time.monotonic()
        self.assertEqual(r.execute_command("FAIL", t["lease"], "smtp down", "RETRY", 300),
                         "retry")
        info = task_info(r, task_id)
        self.assertEqual(info["state"], "delayed")
        self.assertEqual(info["error"], "smtp down")
        self.assertEqual(lease(r, "q"), [], "not before the retry delay")
        t2 = wait_for_lease(r, "q", timeout=3.0)
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertEqual(t2["id"], task_id)
        self.assertEqual(int(t2["attempt"]), 2)
        self.assertNotEqual(t2["lease"], t["lease"])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", t["lease"])
        self.assertEqual(r.execute_command("ACK", t2["lease"], "ok"), 1)
        self.assertEqual(r.execute_command("RESULT", task_id), "ok")

    def test_fail_uses_backoff_of_the_task(self):
        r = self.client()
        task_id = enqueue(r, "q", "p", "BACKOFF", 100, 400)
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e1"), "retry")
        self.assertEqual(task_info(r, task_id)["state"], "delayed")
        t = wait_for_lease(r, "q", timeout=3.0)
        self.assertEqual(int(t["attempt"]), 2)
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e2"), "retry")
        t = wait_for_lease(r, "q", timeout=3.0)
        self.assertEqual(int(t["attempt"]), 3)

    def test_retries_n_allows_n_plus_one_deliveries_then_dead(self):
        r = self.client()
        task_id = enqueue(r, "q", "p", "RETRIES", 2, "BACKOFF", 20, 50)
        for attempt in (1, 2):
            t = wait_for_lease(r, "q", timeout=3.0)
            self.assertEqual(int(t["attempt"]), attempt)
            self.assertEqual(r.execute_command("FAIL", t["lease"], f"err{attempt}"), "retry")
        t = wait_for_lease(r, "q", timeout=3.0)
        self.assertEqual(int(t["attempt"]), 3)
        self.assertEqual(r.execute_command("FAIL", t["lease"], "final error"), "dead")
        info = task_info(r, task_id)
        self.assertEqual(info["state"], "dead")
        self.assertEqual(info["error"], "final error")
        self.assertEqual(int(info["attempt"]), 3)
        time.sleep(0.2)
        self.assertEqual(lease(r, "q"), [], "a dead task is never delivered again")
        with self.assertRaisesRegex(redis.ResponseError, "^FAILED"):
            r.execute_command("RESULT", task_id)

    def test_default_retries_flag_applies(self):
        server = self.start_conveyor("--default-retries", "1", "--default-lease-ms", "10000")
        r = server.client()
        self.addCleanup(r.close)
        task_id = enqueue(r, "q", "p", "BACKOFF", 20, 50)
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e"), "retry")
        t = wait_for_lease(r, "q", timeout=3.0)
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e"), "dead")
        self.assertEqual(task_info(r, task_id)["state"], "dead")

    def test_fail_noretry_is_dead_at_once(self):
        r = self.client()
        task_id = enqueue(r, "q", "p", "RETRIES", 5)
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "bad input", "NORETRY"), "dead")
        self.assertEqual(task_info(r, task_id)["state"], "dead")
        self.assertEqual(r.execute_command("DEAD", "q"), [task_id])

    def test_fail_with_stale_lease_is_leaselost(self):
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        r.execute_command("ACK", t["lease"])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("FAIL", t["lease"], "late")

    def test_dead_letters_listed_oldest_first_with_count(self):
        r = self.client()
        ids = []
        for i in range(4):
            ids.append(enqueue(r, "dlq", f"p{i}"))
        for _ in range(4):
            t = lease_one(r, "dlq")
            self.assertEqual(r.execute_command("FAIL", t["lease"], "x", "NORETRY"), "dead")
        self.assertEqual(r.execute_command("DEAD", "dlq"), ids)
        self.assertEqual(r.execute_command("DEAD", "dlq", "COUNT", 2), ids[:2])
        self.assertEqual(r.execute_command("DEAD", "empty_dlq"), [])

    def test_requeue_moves_dead_task_back_with_attempts_reset(self):
        r = self.client()
        task_id = enqueue(r, "q", "p", "RETRIES", 0)
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "x"), "dead")
        self.assertEqual(r.execute_command("REQUEUE", task_id), 1)
        self.assertEqual(r.execute_command("DEAD", "q"), [])
        self.assertEqual(task_info(r, task_id)["state"], "queued")
        self.assertEqual(r.execute_command("QLEN", "q"), 1)
        t = lease_one(r, "q")
        self.assertEqual(t["id"], task_id)
        self.assertEqual(int(t["attempt"]), 1)
        self.assertEqual(r.execute_command("ACK", t["lease"], "second life"), 1)
        self.assertEqual(r.execute_command("RESULT", task_id), "second life")

    def test_requeue_of_task_that_is_not_dead_is_zero(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        self.assertEqual(r.execute_command("REQUEUE", task_id), 0)
        self.assertEqual(r.execute_command("REQUEUE", "unknown-id"), 0)
        self.assertEqual(r.execute_command("QLEN", "q"), 1)


class LeaseExpiryTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "300", "--default-retries", "1")

    def test_expired_lease_redelivers_and_stale_ack_is_leaselost(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        t1 = lease_one(r, "q")
        self.assertEqual(int(t1["lease_ms"]), 300)
        start = time.monotonic()
        t2 = wait_for_lease(r, "q", timeout=1.3)  # within lease + 1 s
        self.assertGreaterEqual(time.monotonic() - start, 0.25, "redelivered before expiry")
        self.assertEqual(t2["id"], task_id)
        self.assertEqual(int(t2["attempt"]), 2)
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", t1["lease"])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("EXTEND", t1["lease"], 1000)
        self.assertEqual(task_info(r, task_id)["state"], "leased", "stale ACK changed nothing")
        self.assertEqual(r.execute_command("ACK", t2["lease"], "done"), 1)
        self.assertEqual(r.execute_command("RESULT", task_id), "done")
        stats = r.info("stats")
        self.assertEqual(stats["tasks_expired"], 1)
        self.assertEqual(stats["tasks_succeeded"], 1)

    def test_expired_lease_on_last_attempt_dead_letters_the_task(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        lease_one(r, "q")
        t2 = wait_for_lease(r, "q", timeout=1.3)
        self.assertEqual(int(t2["attempt"]), 2)
        info = None
        deadline = time.monotonic() + 1.3
        while time.monotonic() < deadline:
            info = task_info(r, task_id)
            if info["state"] == "dead":
                break
            time.sleep(0.02)
        self.assertEqual(info["state"], "dead", info)
        self.assertIn("lease expired", (info["error"] or "").lower())
        self.assertEqual(r.execute_command("DEAD", "q"), [task_id])
        self.assertEqual(lease(r, "q"), [])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", t2["lease"])
        stats = r.info("stats")
        self.assertEqual(stats["tasks_expired"], 2)
        self.assertEqual(stats["tasks_dead"], 1)

    def test_expired_lease_is_returned_to_a_blocked_leaser(self):
        r = self.client()
        enqueue(r, "q", "p")
        lease_one(r, "q")
        start = time.monotonic()
        tasks = lease(r, "q", block=3000)
        self.assertEqual(len(tasks), 1)
        self.assertEqual(int(tasks[0]["attempt"]), 2)
        self.assertLess(time.monotonic() - start, 1.3)


if __name__ == "__main__":
    unittest.main()
