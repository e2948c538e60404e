"""RELEASE gives the attempt back; EXTEND keeps a lease alive past its first end."""

import time
import unittest

import redis

from harness import ConveyorTestCase, enqueue, lease, lease_one, task_info, wait_for_lease


class ReleaseTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def test_release_requeues_with_same_attempt_number(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        t1 = lease_one(r, "q")
        self.assertEqual(int(t1["attempt"]), 1)
        self.assertEqual(r.execute_command("RELEASE", t1["lease"]), 1)
        self.assertEqual(task_info(r, task_id)["state"], "queued")
        self.assertEqual(r.execute_command("QLEN", "q"), 1)
        t2 = lease_one(r, "q")
        self.assertEqual(t2["id"], task_id)
        self.assertEqual(int(t2["attempt"]), 1, "RELEASE gives the attempt back")
        self.assertNotEqual(t2["lease"], t1["lease"])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", t1["lease"])
        self.assertEqual(r.execute_command("ACK", t2["lease"]), 1)

    def test_release_does_not_consume_retries(self):
        r = self.client()
        task_id = enqueue(r, "q", "p", "RETRIES", 0)
        for _ in range(5):
            self.assertEqual(r.execute_command("RELEASE", lease_one(r, "q")["lease"]), 1)
        t = lease_one(r, "q")
        self.assertEqual(int(t["attempt"]), 1)
        self.assertEqual(task_info(r, task_id)["state"], "leased")

    def test_release_with_delay_holds_task_back(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        t1 = lease_one(r, "q")
        start = time.monotonic()
        self.assertEqual(r.execute_command("RELEASE", t1["lease"], "DELAY", 300), 1)
        self.assertEqual(task_info(r, task_id)["state"], "delayed")
        self.assertEqual(lease(r, "q"), [])
        t2 = wait_for_lease(r, "q", timeout=3.0)
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertEqual(int(t2["attempt"]), 1)

    def test_release_twice_is_leaselost(self):
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("RELEASE", t["lease"]), 1)
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("RELEASE", t["lease"])
        self.assertEqual(r.execute_command("QLEN", "q"), 1, "queued once, not twice")


class ExtendTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "300")

    def test_extend_keeps_lease_past_its_original_end(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("EXTEND", t["lease"], 2000), 1)
        time.sleep(0.6)  # twice the original lease
        self.assertEqual(lease(r, "q"), [], "extended lease must not expire")
        self.assertEqual(task_info(r, task_id)["state"], "leased")
        self.assertEqual(r.execute_command("ACK", t["lease"]), 1)
        self.assertEqual(int(task_info(r, task_id)["attempt"]), 1)

    def test_repeated_extend_works_like_a_heartbeat(self):
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        for _ in range(6):
            time.sleep(0.15)
            self.assertEqual(r.execute_command("EXTEND", t["lease"], 300), 1)
        # 0.9 s have passed, three original leases.
        self.assertEqual(r.execute_command("ACK", t["lease"]), 1)

    def test_extend_after_expiry_is_leaselost(self):
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        wait_for_lease(r, "q", timeout=1.3)
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("EXTEND", t["lease"], 1000)

    def test_extend_after_ack_is_leaselost(self):
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        r.execute_command("ACK", t["lease"])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("EXTEND", t["lease"], 1000)


if __name__ == "__main__":
    unittest.main()
