"""One admission policy for every front end (docs/reliability.md T6, docs/amqp.md "Flow
control"): while the disk of the log is full, RESP producers get -MISCONF and AMQP publishers
are blocked (connection.blocked, their input no longer read) or, for a publish already in
flight, nacked; leases, ACKs and consumers go on; nothing confirmed is lost, the server does
not stop, and publishers go on (connection.unblocked) once space returns.

Before this, an AMQP producer on a full disk was admitted without the disk check, used up the
space the log keeps for finishing tasks, and the server stopped with "writing the log failed
(No space left on device)": the leases held could never be acked.
"""

import os
import threading
import unittest

import pika
import redis

from amqp_target import ON_RABBITMQ
from harness import (ConveyorTestCase, fill_disk, free_port_outside_ephemeral_range,
                     mount_tmpfs_data_dir, wait_until)


def lease_tokens(client, queue, count):
    reply = client.execute_command("LEASE", "COUNT", str(count), "FROM", queue)
    return [dict(zip(t[::2], t[1::2]))["lease"] for t in reply]


def blocked_lines(server):
    return server.log_text().count("): blocked (new work is refused")


def check_after_kill9(case, server, c, pub, jobs):
    """Every publish is queued; after kill -9 and a restart the queues hold `pub` and `jobs`.
    An acknowledged ENQUEUE is synced with every record before it (the unconfirmed publishes
    too); it is then taken back, so only those counts remain."""
    wait_until(lambda: c.execute_command("QLEN", "pub") == pub, 10.0,
               message="every publish queued")
    marker = c.execute_command("ENQUEUE", "marker", "m")
    case.assertEqual(c.execute_command("CANCEL", marker), 1)
    c.close()
    server.kill9()
    server.restart(bind_wait=10.0)
    c2 = server.client()
    case.addCleanup(c2.close)
    case.assertEqual(c2.execute_command("QLEN", "pub"), pub)
    case.assertEqual(c2.execute_command("QLEN", "jobs"), jobs)


class Publisher(threading.Thread):
    """Publishes `count` persistent messages of `size` bytes to `queue` over its own pika
    connection, with or without confirms; records connection.blocked / unblocked."""

    def __init__(self, port, queue, count, size=1000, confirm=True):
        super().__init__(daemon=True)
        self.port, self.queue, self.count, self.size, self.confirm = (port, queue, count, size,
                                                                      confirm)
        self.sent = 0
        self.nacked = 0
        self.blocked = threading.Event()
        self.unblocked = threading.Event()
        self.error = None

    def run(self):
        try:
            conn = pika.BlockingConnection(
                pika.ConnectionParameters("127.0.0.1", self.port, heartbeat=0))
            conn.add_on_connection_blocked_callback(lambda *_: self.blocked.set())
            conn.add_on_connection_unblocked_callback(lambda *_: self.unblocked.set())
            ch = conn.channel()
            if self.confirm:
                ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2)
            body = b"m" * self.size
            while self.sent < self.count:
                try:
                    ch.basic_publish("", self.queue, body, props)
                    self.sent += 1
                except pika.exceptions.NackError:
                    self.nacked += 1  # refused: sent again
            # pika's BlockingConnection runs the blocked/unblocked callbacks from here.
            for _ in range(100):
                conn.process_data_events(0.05)
                if self.unblocked.is_set() or not self.blocked.is_set():
                    break
            conn.close()
        except Exception as e:  # reported by the test
            self.error = repr(e)


@unittest.skipIf(ON_RABBITMQ, "Conveyor's disk admission (DEBUG LOG-FAULT, tmpfs sizes)")
class AmqpAdmissionTest(ConveyorTestCase):
    start_server = False
    case_timeout = 120.0

    def declare(self, port, queue):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        conn.channel().queue_declare(queue, durable=True)
        conn.close()

    def test_debug_disk_full_on_a_fresh_directory_refuses_and_keeps_serving(self):
        # It used to stop the server: the first write after the fault found no space ahead.
        server = self.start_conveyor("--enable-debug-command", "yes")
        c = server.client()
        self.addCleanup(c.close)
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "DISK-FULL"), "OK")

        def refused():
            try:
                c.execute_command("ENQUEUE", "q", "x")
                return False
            except redis.ResponseError as e:
                self.assertTrue(str(e).startswith("MISCONF"), str(e))
                return True
        wait_until(refused, 10.0, interval=0.05, message="ENQUEUE refused on the full disk")
        self.assertEqual(c.ping(), True)
        self.assertTrue(server.is_running(), server.log_text())
        self.assertEqual(c.info("persistence")["log_write_status"], "ok")

    def test_debug_disk_full_blocks_amqp_publishers_while_leases_are_acked(self):
        # 64 KiB segments: the space kept ahead is small, so a few ENQUEUEs find the disk full.
        server = self.start_conveyor("--enable-debug-command", "yes", "--log-segment-size",
                                     "65536", amqp=True, port=free_port_outside_ephemeral_range())
        c = server.client()
        self.addCleanup(c.close)
        self.declare(server.amqp_port, "pub")
        for i in range(20):
            c.execute_command("ENQUEUE", "jobs", f"t{i}")
        leases = lease_tokens(c, "jobs", 10)
        first = Publisher(server.amqp_port, "pub", 50)
        first.start()
        first.join(30)
        self.assertEqual((first.error, first.sent), (None, 50))

        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "DISK-FULL"), "OK")
        wait_until(lambda: self.enqueue_refused(c), 10.0, interval=0.05,
                   message="the full disk noticed")
        confirmed = Publisher(server.amqp_port, "pub", 30)
        unconfirmed = Publisher(server.amqp_port, "pub", 30, confirm=False)
        confirmed.start()
        unconfirmed.start()
        # pika's BlockingConnection runs the blocked callback only once basic_publish returns
        # (below); the server's log says when it blocks them.
        wait_until(lambda: blocked_lines(server) >= 2, 10.0, message="both publishers blocked")
        self.assertEqual(confirmed.sent, 0)
        # Leases taken before the disk filled are acked; the server goes on.
        for lease in leases:
            self.assertEqual(c.execute_command("ACK", lease), 1)
        # Nothing was taken from a blocked connection (pika without confirms has "sent" its
        # 30 into the socket already).
        self.assertEqual(c.execute_command("QLEN", "pub"), 50)
        self.assertTrue(server.is_running(), server.log_text())

        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "OFF"), "OK")
        for p in (confirmed, unconfirmed):
            p.join(30)
            self.assertFalse(p.is_alive(), "a publisher stayed blocked after space returned")
            self.assertIsNone(p.error)
            self.assertEqual(p.nacked, 0, "a publish was refused instead of held")
            self.assertEqual(p.sent, 30)
            self.assertTrue(p.blocked.is_set(), "no connection.blocked")
            self.assertTrue(p.unblocked.is_set(), "no connection.unblocked")
        check_after_kill9(self, server, c, pub=110, jobs=10)

    def enqueue_refused(self, c):
        try:
            c.execute_command("ENQUEUE", "filler", "f" * 4096)
            return False
        except redis.ResponseError as e:
            self.assertTrue(str(e).startswith("MISCONF"), str(e))
            return True


@unittest.skipIf(ON_RABBITMQ, "Conveyor's --maxmemory")
class AmqpMaxMemoryTest(ConveyorTestCase):
    """T13 over AMQP: past --maxmemory a publisher is blocked, not refused, and goes on once
    memory is freed; RESP LEASE and ACK go on meanwhile."""

    start_server = False
    case_timeout = 60.0

    def test_publisher_blocked_past_maxmemory_until_memory_is_freed(self):
        server = self.start_conveyor("--maxmemory", "24mb", "--fsync", "no", amqp=True)
        r = server.client(decode=False)
        self.addCleanup(r.close)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        conn.channel().queue_declare("pub", durable=True)
        conn.close()
        chunk = b"x" * (1 << 20)
        for _ in range(200):
            try:
                r.execute_command("ENQUEUE", "big", chunk)
            except redis.ResponseError as e:
                self.assertIn("OOM", str(e))
                break
        else:
            self.fail("200 MiB were accepted under --maxmemory 24mb")
        publisher = Publisher(server.amqp_port, "pub", 5, size=1 << 20)
        publisher.start()
        wait_until(lambda: blocked_lines(server) >= 1, 10.0, message="the publisher blocked")
        self.assertLess(r.execute_command("QLEN", "pub"), 5)
        task = r.execute_command("LEASE", "FROM", "big")[0]
        self.assertEqual(r.execute_command("ACK", dict(zip(task[::2], task[1::2]))[b"lease"]), 1)
        r.execute_command("DEL", "big")
        publisher.join(30)
        self.assertFalse(publisher.is_alive(), "the publisher stayed blocked")
        self.assertEqual((publisher.error, publisher.sent, publisher.nacked), (None, 5, 0))
        self.assertTrue(publisher.blocked.is_set() and publisher.unblocked.is_set())
        self.assertEqual(r.execute_command("QLEN", "pub"), 5)


@unittest.skipIf(ON_RABBITMQ, "Conveyor's disk admission on a tmpfs")
class RealFullDiskAmqpTest(ConveyorTestCase):
    """The report's run: a 4 MiB tmpfs data directory, 20 tasks enqueued over RESP, 10 of
    them leased, the disk filled, then a pika producer with confirms publishing 1,980
    persistent 1 KB messages and one without confirms (mounting needs root, which `make
    test` has)."""

    start_server = False
    case_timeout = 120.0

    def setUp(self):
        super().setUp()
        self.workdir, self.data = mount_tmpfs_data_dir(self, "4m", "conveyor-full-amqp-")

    def test_amqp_and_resp_on_a_full_tmpfs(self):
        server = self.start_conveyor("--log-segment-size", "1048576", workdir=self.workdir,
                                     amqp=True, port=free_port_outside_ephemeral_range())
        c = server.client()
        self.addCleanup(c.close)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        conn.channel().queue_declare("pub", durable=True)
        conn.close()
        for i in range(20):
            c.execute_command("ENQUEUE", "jobs", f"t{i}")
        leases = lease_tokens(c, "jobs", 10)
        filler = fill_disk(self.data, leave=64 * 1024)

        confirmed = Publisher(server.amqp_port, "pub", 1980)
        unconfirmed = Publisher(server.amqp_port, "pub", 200, confirm=False)
        confirmed.start()
        unconfirmed.start()
        wait_until(lambda: blocked_lines(server) >= 1, 30.0,
                   message="a publisher blocked once the disk was full")
        self.assertLess(confirmed.sent, 1980)
        with self.assertRaises(redis.ResponseError) as e:
            c.execute_command("ENQUEUE", "jobs", "late")
        self.assertTrue(str(e.exception).startswith("MISCONF"), str(e.exception))
        for lease in leases:
            self.assertEqual(c.execute_command("ACK", lease), 1)
        self.assertTrue(server.is_running(), server.log_text())
        self.assertEqual(c.info("persistence")["log_write_status"], "ok")

        os.remove(filler)
        for p in (confirmed, unconfirmed):
            p.join(60)
            self.assertFalse(p.is_alive(), "a publisher stayed blocked after space returned")
            self.assertIsNone(p.error)
            self.assertEqual(p.nacked, 0, "a publish was refused instead of held")
        self.assertEqual((confirmed.sent, unconfirmed.sent), (1980, 200))
        self.assertTrue(confirmed.blocked.is_set() and confirmed.unblocked.is_set())
        check_after_kill9(self, server, c, pub=2180, jobs=10)


if __name__ == "__main__":
    unittest.main()
