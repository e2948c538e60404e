"""Durations and timestamps have one range (docs/commands.md, "Durations and timestamps").

A huge time value once froze the broker at 100 % CPU, for good: a deadline of INT64_MAX us,
converted to steady_clock nanoseconds, wrapped into the past, so the deadline timer fired at
once, forever, and no reply waiting for the log was sent; the record stayed in the log and
did the same after a restart. Now every duration from a client or a flag is refused past
100 years (3153600000000 ms), an AMQP expiration past it closes the channel with 406, and a
log record that already holds such a time is clamped at start, with a warning.
"""

import os
import signal
import time

from harness import (ConveyorTestCase, RespError, enqueue, free_port, lease_one, run_conveyor,
                     task_info, wait_for_lease)
from test_check_data import frame, segment_header, segment_name, varint, zigzag

from amqp_target import AmqpTestCase, conveyor_only

MAX_MS = 3153600000000
INT64_MAX = 9223372036854775807
HUGE = "99999999999999999"
RANGE = f"is out of range (max {MAX_MS} ms)"


class TimeRangeCommandsTest(ConveyorTestCase):
    """Each RESP trigger of the freeze is refused with the option's name; the limit itself is
    taken, and the broker keeps answering afterwards."""

    def setUp(self):
        super().setUp()
        self.conn = self.raw()
        self.r = self.client()

    def assertRefused(self, args, option):
        reply = self.conn.command(*args)
        self.assertIsInstance(reply, RespError, f"{args} replied {reply!r}")
        self.assertEqual(reply, f"ERR {option} {RANGE}", args)

    def assertResponsive(self):
        """The loop still turns: a logged change is acknowledged and PING answers."""
        self.assertTrue(enqueue(self.r, "responsive", "x"))
        self.assertServerAlive()

    def leased(self, queue="jobs"):
        enqueue(self.r, queue, "work")
        return lease_one(self.r, queue)["lease"]

    def test_enqueue_delay_past_the_range_is_refused(self):
        self.assertRefused(["ENQUEUE", "q", "x", "DELAY", str(INT64_MAX)], "DELAY")
        self.assertRefused(["ENQUEUE", "q", "x", "DELAY", str(MAX_MS + 1)], "DELAY")
        task = enqueue(self.r, "q", "x", "DELAY", MAX_MS)
        self.assertEqual(task_info(self.r, task)["state"], "delayed")
        self.assertResponsive()

    def test_enqueue_ttl_past_the_range_is_refused(self):
        self.assertRefused(["ENQUEUE", "q", "x", "TTL", HUGE], "TTL")
        enqueue(self.r, "q", "x", "TTL", MAX_MS)
        self.assertResponsive()

    def test_enqueue_at_past_the_range_is_refused(self):
        reply = self.conn.command("ENQUEUE", "q", "x", "AT", str(INT64_MAX))
        self.assertEqual(reply, "ERR AT is out of range (max 100 years from now)")
        enqueue(self.r, "q", "x", "AT", int(time.time() * 1000) + 3600 * 1000)
        self.assertResponsive()

    def test_backoff_past_the_range_is_refused_and_the_limit_retries(self):
        self.assertRefused(["ENQUEUE", "q", "x", "BACKOFF", HUGE, HUGE], "BACKOFF")
        self.assertRefused(["ENQUEUE", "q", "x", "BACKOFF", "1000", HUGE], "BACKOFF")
        task = enqueue(self.r, "q", "x", "BACKOFF", MAX_MS, MAX_MS)
        lease = lease_one(self.r, "q")["lease"]
        self.assertEqual(self.r.execute_command("FAIL", lease, "boom"), "retry")
        self.assertEqual(task_info(self.r, task)["state"], "delayed")
        self.assertResponsive()

    def test_timeout_past_the_range_is_refused_and_the_limit_leases(self):
        self.assertRefused(["ENQUEUE", "q", "x", "TIMEOUT", HUGE], "TIMEOUT")
        enqueue(self.r, "q", "x", "TIMEOUT", MAX_MS)
        task = lease_one(self.r, "q")
        self.assertEqual(int(task["lease_ms"]), MAX_MS)  # TIMEOUT + grace, at most the range
        self.assertResponsive()

    def test_lease_for_past_the_range_is_refused(self):
        enqueue(self.r, "jobs", "work")
        self.assertRefused(["LEASE", "FOR", HUGE, "FROM", "jobs"], "FOR")
        self.assertRefused(["LEASE", "for", str(INT64_MAX), "FROM", "jobs"], "FOR")
        self.assertEqual(self.r.execute_command("QLEN", "jobs"), 1)  # nothing leased
        self.assertEqual(int(lease_one(self.r, "jobs", for_ms=MAX_MS)["lease_ms"]), MAX_MS)
        self.assertResponsive()

    def test_extend_past_the_range_is_refused(self):
        lease = self.leased()
        self.assertRefused(["EXTEND", lease, HUGE], "ms")
        self.assertEqual(self.r.execute_command("EXTEND", lease, MAX_MS), 1)
        self.assertResponsive()

    def test_release_delay_past_the_range_is_refused(self):
        lease = self.leased()
        self.assertRefused(["RELEASE", lease, "DELAY", HUGE], "DELAY")
        self.assertEqual(self.r.execute_command("RELEASE", lease, "DELAY", MAX_MS), 1)
        self.assertResponsive()

    def test_fail_retry_past_the_range_is_refused(self):
        lease = self.leased()
        self.assertRefused(["FAIL", lease, "e", "RETRY", HUGE], "RETRY")
        self.assertEqual(self.r.execute_command("FAIL", lease, "e", "RETRY", MAX_MS), "retry")
        self.assertResponsive()

    def test_blocking_timeouts_past_the_range_are_refused(self):
        self.assertRefused(["LEASE", "BLOCK", HUGE, "FROM", "jobs"], "BLOCK")
        self.assertRefused(["RESULT", "some-id", "WAIT", HUGE], "WAIT")
        reply = self.conn.command("BLPOP", "jobs", "3153600001")
        self.assertEqual(reply, "ERR timeout is out of range (max 3153600000 s)")
        self.assertResponsive()


class TimeRangeFlagsTest(ConveyorTestCase):
    start_server = False

    def assertFlagRefused(self, flag):
        code, out = run_conveyor("server", "--port", free_port(), "--bind", "127.0.0.1",
                                 "--amqp-port", "0", "--data-dir", "/nonexistent-unused",
                                 flag, HUGE, timeout=10)
        self.assertEqual(code, 1, out)
        self.assertIn(f"{flag} {RANGE}", out)

    def test_default_lease_ms_past_the_range_is_refused(self):
        self.assertFlagRefused("--default-lease-ms")

    def test_result_ttl_ms_past_the_range_is_refused(self):
        self.assertFlagRefused("--result-ttl-ms")

    def test_amqp_consumer_timeout_past_the_range_is_refused(self):
        self.assertFlagRefused("--amqp-consumer-timeout")


@conveyor_only("reads the queue over RESP")
class TimeRangeAmqpTest(AmqpTestCase):

    def test_expiration_past_the_range_closes_the_channel_with_406(self):
        import pika
        from pika.exceptions import ChannelClosedByBroker
        conn = self.connect()
        ch = conn.channel()
        q = self.qname()
        ch.queue_declare(q)
        ch.confirm_delivery()
        with self.assertRaises(ChannelClosedByBroker) as e:
            ch.basic_publish("", q, b"x", pika.BasicProperties(expiration=HUGE))
        self.assertEqual(e.exception.reply_code, 406)
        self.assertIn("expiration", e.exception.reply_text)
        self.assertIn(f"max {MAX_MS} ms", e.exception.reply_text)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", q, b"y", pika.BasicProperties(expiration=str(MAX_MS)))
        self.assertEqual(self.resp.execute_command("QLEN", q), 1)
        self.assertTrue(enqueue(self.resp, "responsive", "x"))


def enqueue_record(mono_us, wall_ms, task_id, queue, payload, due_us):
    """An `enqueue` record (tag 1, docs/storage-format.md) with a due time of `due_us`."""
    def text(s):
        b = s.encode()
        return varint(len(b)) + b

    def signed(v):
        return varint(zigzag(v))

    return (bytes([1]) + signed(mono_us) + signed(wall_ms) + text(task_id) + text(queue)
            + text("") + text(payload) + signed(0) + signed(due_us) + signed(3)
            + signed(1000) + signed(600000) + signed(0) + signed(0) + b"\0")


class TimeRangeRecoveryTest(ConveyorTestCase):
    """A log written by a broker that took `ENQUEUE jobs b DELAY 9223372036854775807`."""

    case_timeout = 60.0

    def append_segment(self, payload):
        data = self.server.data_dir
        seqs = [int(n[:-4]) for n in os.listdir(data) if n.endswith(".log")]
        seq = max(seqs) + 1
        with open(os.path.join(data, segment_name(seq)), "wb") as f:
            f.write(segment_header(seq) + frame(payload))

    def test_a_logged_deadline_past_the_range_is_clamped_at_start(self):
        r = self.client()
        enqueue(r, "jobs", "a", "ID", "a")
        lease_one(r, "jobs", for_ms=2000)
        self.server.stop(signal.SIGTERM)
        # Written an hour of monotonic time after now (the broker's mono clock is
        # CLOCK_MONOTONIC plus an offset; Python's time.monotonic() reads the same clock), so
        # the restarted broker's offset is about +1 h. The old conversion of INT64_MAX us then
        # wrapped to about -3.6e12 ns, always in the past, and the deadline timer spun.
        mono_us = int(time.monotonic() * 1e6) + 3600 * 10**6
        now_ms = int(time.time() * 1000)
        self.append_segment(enqueue_record(mono_us, now_ms, "b", "jobs", "b", INT64_MAX))

        code, out = run_conveyor("check-data", self.server.data_dir, timeout=20)
        self.assertEqual(code, 0, out)
        self.assertIn("out of range: 1 record ", out)

        for restart in range(2):  # a clean start, then one after kill -9
            self.server.restart(signal.SIGKILL)
            self.assertIn("clamped to 100 years", self.server.log_text())
            r = self.client(timeout=5)
            self.assertEqual(r.ping(), True)
            self.assertEqual(task_info(r, "b")["state"], "delayed")
            # The lease of `a` has run out (b's record is an hour later): then the only
            # deadline is b's, 100 years ahead.
            got = wait_for_lease(r, "jobs", 15, for_ms=1000)
            self.assertEqual(got["id"], "a")
            self.assertTrue(enqueue(r, "other", "c"))
            self.assertServerAlive()
