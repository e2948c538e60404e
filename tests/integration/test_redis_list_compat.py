"""Redis list commands on task queues: the orders Redis users rely on, counts, blocking pops,
and mixing list commands with ENQUEUE/LEASE on the same queue."""

import concurrent.futures
import time
import unittest

from harness import ConveyorTestCase, enqueue, lease_one


class RedisListCompatTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def test_lpush_returns_length_and_brpop_is_fifo(self):
        r = self.client()
        self.assertEqual(r.lpush("jobs", "a"), 1)
        self.assertEqual(r.lpush("jobs", "b", "c"), 3)
        self.assertEqual(r.brpop(["jobs"], 1), ("jobs", "a"))
        self.assertEqual(r.brpop(["jobs"], 1), ("jobs", "b"))
        self.assertEqual(r.brpop(["jobs"], 1), ("jobs", "c"))

    def test_lpush_rpop_is_fifo(self):
        r = self.client()
        r.lpush("jobs", "1", "2", "3")
        self.assertEqual([r.rpop("jobs") for _ in range(3)], ["1", "2", "3"])
        self.assertIsNone(r.rpop("jobs"))

    def test_rpush_lpop_is_fifo(self):
        r = self.client()
        self.assertEqual(r.rpush("jobs", "x", "y"), 2)
        self.assertEqual(r.rpush("jobs", "z"), 3)
        self.assertEqual([r.lpop("jobs") for _ in range(3)], ["x", "y", "z"])
        self.assertIsNone(r.lpop("jobs"))

    def test_rpush_blpop_is_fifo(self):
        r = self.client()
        r.rpush("jobs", "x", "y")
        self.assertEqual(r.blpop(["jobs"], 1), ("jobs", "x"))
        self.assertEqual(r.blpop(["jobs"], 1), ("jobs", "y"))

    def test_pop_with_count(self):
        r = self.client()
        r.rpush("jobs", "a", "b", "c", "d", "e")
        self.assertEqual(r.lpop("jobs", 2), ["a", "b"])
        self.assertEqual(r.rpop("jobs", 2), ["e", "d"])
        self.assertEqual(r.lpop("jobs", 10), ["c"])
        self.assertEqual(r.llen("jobs"), 0)

    def test_llen_counts_elements(self):
        r = self.client()
        self.assertEqual(r.llen("jobs"), 0)
        r.lpush("jobs", *[str(i) for i in range(25)])
        self.assertEqual(r.llen("jobs"), 25)
        r.rpop("jobs")
        self.assertEqual(r.llen("jobs"), 24)

    def test_del_removes_the_queue(self):
        r = self.client()
        r.lpush("jobs", "a", "b")
        self.assertEqual(r.delete("jobs"), 1)
        self.assertEqual(r.llen("jobs"), 0)
        self.assertIsNone(r.rpop("jobs"))
        self.assertEqual(r.delete("jobs"), 0)
        self.assertNotIn("jobs", r.execute_command("QUEUES"))

    def test_blpop_times_out_with_nil(self):
        r = self.client()
        start = time.monotonic()
        self.assertIsNone(r.blpop(["empty_list"], 1))
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.95)
        self.assertLess(elapsed, 3.0)

    def test_brpop_serves_first_nonempty_key_in_order(self):
        r = self.client()
        r.lpush("second", "s")
        r.lpush("third", "t")
        self.assertEqual(r.brpop(["first", "second", "third"], 1), ("second", "s"))

    def test_brpop_is_woken_by_lpush_from_another_connection(self):
        blocked, producer = self.client(), self.client()
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(blocked.brpop, ["wake_list"], 5)
            time.sleep(0.2)
            self.assertFalse(future.done())
            start = time.monotonic()
            producer.lpush("wake_list", "ping")
            self.assertEqual(future.result(timeout=3), ("wake_list", "ping"))
            self.assertLess(time.monotonic() - start, 2.0)

    def test_binary_elements_round_trip(self):
        r = self.client(decode=False)
        element = bytes(range(256)) + b"\r\n"
        r.lpush(b"bin", element)
        self.assertEqual(r.rpop(b"bin"), element)

    def test_enqueued_tasks_can_be_rpopped_in_order(self):
        r = self.client()
        enqueue(r, "mixed", "first")
        enqueue(r, "mixed", "second")
        self.assertEqual(r.llen("mixed"), 2)
        self.assertEqual(r.rpop("mixed"), "first")
        self.assertEqual(r.rpop("mixed"), "second")

    def test_lpushed_items_can_be_leased_in_order(self):
        r = self.client()
        r.lpush("mixed", "one", "two")
        t = lease_one(r, "mixed")
        self.assertEqual(t["payload"], "one")
        self.assertEqual(int(t["attempt"]), 1)
        self.assertEqual(r.execute_command("ACK", t["lease"]), 1)
        self.assertEqual(lease_one(r, "mixed")["payload"], "two")

    def test_qlen_and_llen_agree(self):
        r = self.client()
        r.lpush("mixed", "a")
        enqueue(r, "mixed", "b")
        self.assertEqual(r.llen("mixed"), 2)
        self.assertEqual(r.execute_command("QLEN", "mixed"), 2)

    def test_popped_element_is_gone_for_good(self):
        r = self.client()
        r.lpush("gone", "x")
        self.assertEqual(r.rpop("gone"), "x")
        time.sleep(0.1)
        self.assertEqual(r.execute_command("LEASE", "FROM", "gone"), [])


if __name__ == "__main__":
    unittest.main()
