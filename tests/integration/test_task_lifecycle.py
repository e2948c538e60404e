"""The happy path of a task: ENQUEUE -> LEASE -> ACK -> RESULT/TASK, with idempotent IDs,
binary payloads, lease lengths and the queue-management commands."""

import time
import unittest

import redis

from harness import ConveyorTestCase, enqueue, lease, lease_one, pairs_to_dict, task_info

TASK_FIELDS = ("id", "queue", "name", "state", "attempt", "priority", "result", "error",
               "created_ms", "updated_ms")
LEASE_FIELDS = ("id", "lease", "queue", "name", "payload", "attempt", "lease_ms", "timeout_ms")


class TaskLifecycleTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "7000")

    def test_enqueue_lease_ack_result(self):
        r = self.client()
        before_ms = int(time.time() * 1000)
        task_id = enqueue(r, "emails", "hello", "NAME", "send_email")
        self.assertIsInstance(task_id, str)
        self.assertTrue(task_id)

        info = task_info(r, task_id)
        for field in TASK_FIELDS:
            self.assertIn(field, info, f"TASK lacks {field}: {info!r}")
        self.assertEqual(info["id"], task_id)
        self.assertEqual(info["queue"], "emails")
        self.assertEqual(info["name"], "send_email")
        self.assertEqual(info["state"], "queued")
        self.assertEqual(int(info["attempt"]), 0)
        self.assertEqual(int(info["priority"]), 0)
        self.assertLessEqual(before_ms - 1000, int(info["created_ms"]))
        self.assertLessEqual(int(info["created_ms"]), int(time.time() * 1000) + 1000)
        self.assertIsNone(r.execute_command("RESULT", task_id), "not finished yet")

        t = lease_one(r, "emails")
        for field in LEASE_FIELDS:
            self.assertIn(field, t, f"leased task lacks {field}: {t!r}")
        self.assertEqual(t["id"], task_id)
        self.assertEqual(t["queue"], "emails")
        self.assertEqual(t["name"], "send_email")
        self.assertEqual(t["payload"], "hello")
        self.assertEqual(int(t["attempt"]), 1)
        self.assertEqual(int(t["lease_ms"]), 7000, "default lease = --default-lease-ms")
        self.assertEqual(int(t["timeout_ms"]), 0)
        self.assertEqual(task_info(r, task_id)["state"], "leased")
        self.assertEqual(int(task_info(r, task_id)["attempt"]), 1)

        self.assertEqual(r.execute_command("ACK", t["lease"], "sent:250"), 1)
        info = task_info(r, task_id)
        self.assertEqual(info["state"], "succeeded")
        self.assertEqual(info["result"], "sent:250")
        self.assertGreaterEqual(int(info["updated_ms"]), int(info["created_ms"]))
        self.assertEqual(r.execute_command("RESULT", task_id), "sent:250")
        self.assertEqual(lease(r, "emails"), [])

    def test_ack_without_result_gives_empty_result(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        self.assertEqual(r.execute_command("ACK", lease_one(r, "q")["lease"]), 1)
        self.assertEqual(r.execute_command("RESULT", task_id), "")

    def test_second_ack_of_same_lease_is_leaselost(self):
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        self.assertEqual(r.execute_command("ACK", t["lease"]), 1)
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", t["lease"])
        with self.assertRaisesRegex(redis.ResponseError, "^LEASELOST"):
            r.execute_command("ACK", "no-such-lease-token")

    def test_binary_payload_and_result_round_trip(self):
        r = self.client(decode=False)
        payload = bytes(range(256)) * 40 + b"\r\n$5\r\n*1\r\n"
        task_id = r.execute_command("ENQUEUE", "bin", payload)
        t = pairs_to_dict(r.execute_command("LEASE", "FROM", "bin")[0])
        self.assertEqual(t["payload"], payload)
        self.assertEqual(r.execute_command("ACK", t["lease"], payload[::-1]), 1)
        self.assertEqual(r.execute_command("RESULT", task_id), payload[::-1])

    def test_large_payload_below_max_payload(self):
        r = self.client(decode=False)
        payload = b"x" * (4 * 1024 * 1024)
        r.execute_command("ENQUEUE", "big", payload)
        t = pairs_to_dict(r.execute_command("LEASE", "FROM", "big")[0])
        self.assertEqual(len(t["payload"]), len(payload))
        self.assertEqual(t["payload"], payload)

    def test_enqueue_with_existing_id_returns_it_and_enqueues_nothing(self):
        r = self.client()
        self.assertEqual(enqueue(r, "q", "first", "ID", "order-42"), "order-42")
        self.assertEqual(enqueue(r, "q", "second", "ID", "order-42"), "order-42")
        self.assertEqual(enqueue(r, "other", "third", "ID", "order-42"), "order-42")
        self.assertEqual(r.execute_command("QLEN", "q"), 1)
        self.assertEqual(r.execute_command("QLEN", "other"), 0)
        t = lease_one(r, "q")
        self.assertEqual((t["id"], t["payload"]), ("order-42", "first"))
        # Still idempotent while leased and after success.
        self.assertEqual(enqueue(r, "q", "again", "ID", "order-42"), "order-42")
        r.execute_command("ACK", t["lease"])
        self.assertEqual(enqueue(r, "q", "again", "ID", "order-42"), "order-42")
        self.assertEqual(r.execute_command("QLEN", "q"), 0)
        self.assertEqual(task_info(r, "order-42")["state"], "succeeded")

    def test_generated_ids_are_unique(self):
        r = self.client()
        ids = {enqueue(r, "q", str(i)) for i in range(200)}
        self.assertEqual(len(ids), 200)

    def test_lease_for_sets_lease_length(self):
        r = self.client()
        enqueue(r, "q", "p")
        self.assertEqual(int(lease_one(r, "q", for_ms=1500)["lease_ms"]), 1500)

    def test_timeout_sets_timeout_ms_and_lengthens_lease_beyond_it(self):
        r = self.client()
        enqueue(r, "q", "p", "TIMEOUT", 2000)
        t = lease_one(r, "q")
        self.assertEqual(int(t["timeout_ms"]), 2000)
        self.assertGreater(int(t["lease_ms"]), 2000, "lease = TIMEOUT + grace")

    def test_lease_count_returns_up_to_count(self):
        r = self.client()
        for i in range(5):
            enqueue(r, "q", f"p{i}")
        self.assertEqual(len(lease(r, "q", count=3)), 3)
        self.assertEqual(len(lease(r, "q", count=3)), 2)
        self.assertEqual(lease(r, "q", count=3), [])

    def test_lease_on_empty_or_unknown_queue_is_empty_array(self):
        self.assertEqual(lease(self.client(), "never_seen"), [])

    def test_task_and_result_of_unknown_id_are_nil(self):
        r = self.client()
        self.assertIsNone(r.execute_command("TASK", "nope"))
        self.assertIsNone(r.execute_command("RESULT", "nope"))

    def test_qlen_queues_and_qpurge(self):
        r = self.client()
        for i in range(4):
            enqueue(r, "mgmt_a", f"a{i}")
        enqueue(r, "mgmt_b", "b0")
        later = enqueue(r, "mgmt_b", "b-later", "DELAY", 60000)
        leased = lease_one(r, "mgmt_a")
        self.assertEqual(r.execute_command("QLEN", "mgmt_a"), 3)
        self.assertEqual(r.execute_command("QLEN", "mgmt_b"), 1)
        self.assertEqual(r.execute_command("QLEN", "never_seen"), 0)
        self.assertTrue({"mgmt_a", "mgmt_b"} <= set(r.execute_command("QUEUES")))
        self.assertEqual(r.execute_command("QPURGE", "mgmt_a"), 3)
        self.assertEqual(r.execute_command("QLEN", "mgmt_a"), 0)
        # Purge removes ready tasks only: the leased one can still be acked.
        self.assertEqual(r.execute_command("ACK", leased["lease"]), 1)
        # ... and delayed tasks are not ready, so they stay.
        self.assertEqual(r.execute_command("QPURGE", "mgmt_b"), 1)
        self.assertEqual(task_info(r, later)["state"], "delayed")
        self.assertEqual(r.execute_command("QPURGE", "never_seen"), 0)

    def test_queues_lists_only_queues_with_tasks(self):
        r = self.client()
        enqueue(r, "has_tasks", "p")
        names = r.execute_command("QUEUES")
        self.assertIn("has_tasks", names)
        self.assertNotIn("never_seen", names)

    def test_enqueue_rejects_bad_options(self):
        r = self.client()
        for opts in (["PRIORITY", "10"], ["PRIORITY", "-1"], ["DELAY", "abc"],
                     ["RETRIES", "x"], ["NOSUCHOPTION", "1"], ["DELAY", "10", "AT", "10"]):
            with self.subTest(opts=opts):
                with self.assertRaisesRegex(redis.ResponseError, r"^(ERR )?\S"):
                    enqueue(r, "bad", "p", *opts)
        self.assertEqual(r.execute_command("QLEN", "bad"), 0)


if __name__ == "__main__":
    unittest.main()
