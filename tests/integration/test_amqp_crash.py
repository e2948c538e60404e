"""Power loss under AMQP publishes (docs/reliability.md T2 for publisher confirms), Conveyor only.

Under `--fsync always` a round of the event loop whose records no reply waits for (AMQP
publishes without confirms, consumer acks) is written without an fdatasync; the next round
with a waiter, or the once-a-second housekeeping, syncs it (docs/storage-format.md). So the
log holds unsynced tails all the time, and a power loss may cut any of them. The promise is
unchanged: a publish the broker confirmed is never lost.

Two pika producers on one durable queue, one with confirms ("c-<n>", recorded once
basic_publish returned: BlockingConnection raises on a nack), one without ("u-<n>"), while
the broker is killed with SIGKILL and each log file is cut at a random point between what
its last fsync made durable and its end (the server runs with CONVEYOR_DEBUG_TRACK_SYNCS=1
and `--enable-debug-command yes`, as test_crash_recovery's power-loss case does). Then a
clean restart and a drain over RESP: every confirmed message is there, nothing is there that
no producer sent, and the cuts did drop unsynced bytes (or the test proved nothing).
"""

import os
import random
import sys
import threading
import time
import unittest

import pika
from pika.exceptions import AMQPError

from amqp_target import ON_RABBITMQ
from harness import (ConveyorTestCase, free_port_outside_ephemeral_range, info_section, lease,
                     lease_one, wait_until)
import test_crash_recovery  # its power-loss cut (not its cases: no class imported here)

QUEUE = "power"
POWER_LOSSES = 12


class Producer(threading.Thread):
    def __init__(self, port, prefix, confirm, stop, pause=0.0005):
        super().__init__(daemon=True)
        self.port, self.prefix, self.confirm, self.stop = port, prefix, confirm, stop
        self.pause = pause  # between unconfirmed publishes
        self.sent = set()       # every body handed to basic_publish
        self.confirmed = set()  # those the broker confirmed
        self.errors = []
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            try:
                conn = pika.BlockingConnection(pika.ConnectionParameters(
                    "127.0.0.1", self.port, connection_attempts=1, socket_timeout=5,
                    blocked_connection_timeout=10, stack_timeout=10))
            except AMQPError:
                time.sleep(0.05)  # the broker is down: try again
                continue
            try:
                ch = conn.channel()
                ch.queue_declare(QUEUE, durable=True)
                if self.confirm:
                    ch.confirm_delivery()
                while not self.stop.is_set():
                    body = f"{self.prefix}-{self.n}"
                    self.n += 1
                    self.sent.add(body)
                    ch.basic_publish("", QUEUE, body.encode(),
                                     pika.BasicProperties(delivery_mode=2))
                    if self.confirm:
                        self.confirmed.add(body)
                    elif self.pause:
                        time.sleep(self.pause)
            except (AMQPError, OSError):
                pass  # killed mid-publish: that one is neither confirmed nor promised
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
                return
            finally:
                try:
                    if conn.is_open:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass


@unittest.skipIf(ON_RABBITMQ, "kills and cuts Conveyor's own log")
class AmqpPowerLossTest(ConveyorTestCase):
    start_server = False
    case_timeout = 120.0

    def test_confirmed_publishes_survive_power_loss(self):
        self.power_loss_run(handoff_bytes=None, unconfirmed_pause=0)

    def test_confirmed_publishes_survive_power_loss_with_every_sync_on_the_sync_thread(self):
        # Large synced batches are written and synced by the log's sync thread while the core
        # thread reads on (durable_log.hpp); forced here for every synced batch.
        self.power_loss_run(handoff_bytes=1, unconfirmed_pause=0)

    def power_loss_run(self, handoff_bytes, unconfirmed_pause):
        # The unconfirmed producer runs flat out (pause 0), so the kills find unsynced tails
        # to cut (the check below): the sync thread, while it works, syncs the unconfirmed
        # batches kicked meanwhile too.
        os.environ["CONVEYOR_DEBUG_TRACK_SYNCS"] = "1"
        self.addCleanup(os.environ.pop, "CONVEYOR_DEBUG_TRACK_SYNCS", None)
        if handoff_bytes is not None:
            os.environ["CONVEYOR_DEBUG_HANDOFF_BYTES"] = str(handoff_bytes)
            self.addCleanup(os.environ.pop, "CONVEYOR_DEBUG_HANDOFF_BYTES", None)
        # Restarted on the same ports while producers reconnect: ports outside the ephemeral
        # range (harness.free_port_outside_ephemeral_range).
        server = self.start_conveyor("--fsync", "always", "--enable-debug-command", "yes",
                                     port=free_port_outside_ephemeral_range(),
                                     amqp=True)
        seed = os.environ.get("CONVEYOR_CRASH_SEED") or str(random.SystemRandom().randrange(10**9))
        sys.stderr.write(f"\n[amqp power loss] seed {seed}\n")
        rng = random.Random(seed)
        stop = threading.Event()
        confirmed = Producer(server.amqp_port, "c", True, stop)
        unconfirmed = Producer(server.amqp_port, "u", False, stop, unconfirmed_pause)
        self.addCleanup(stop.set)
        confirmed.start()
        unconfirmed.start()

        dropped = 0
        for _ in range(POWER_LOSSES):
            time.sleep(rng.uniform(0.2, 0.8))
            server.kill9()
            dropped += test_crash_recovery.CrashUnderLoadTest.drop_unsynced(server, rng)
            server.restart(bind_wait=10.0)
        time.sleep(0.5)
        stop.set()
        for p in (confirmed, unconfirmed):
            p.join(30)
            self.assertFalse(p.is_alive(), f"producer {p.prefix} did not stop")
            self.assertEqual(p.errors, [], f"producer {p.prefix}")
        self.assertGreater(len(confirmed.confirmed), 100, "too few confirmed publishes")
        self.assertGreater(dropped, 0, "no power loss cut an unsynced tail: nothing was tested")

        server.restart()  # a clean stop and start
        r = server.client(timeout=10.0)
        drained = []
        while True:
            tasks = lease(r, QUEUE, count=500)
            if not tasks:
                break
            # One pipeline of ACKs per batch (one fsync, not one per message: the flat-out
            # unconfirmed producer leaves tens of thousands, and the drain must fit the
            # watchdog on a busy machine).
            pipe = r.pipeline(transaction=False)
            for t in tasks:
                drained.append(t["payload"])
                pipe.execute_command("ACK", t["lease"])
            self.assertEqual(pipe.execute(), [1] * len(tasks))
        got = set(drained)
        lost = confirmed.confirmed - got
        unexpected = got - confirmed.sent - unconfirmed.sent
        sys.stderr.write(f"[amqp power loss] {len(confirmed.confirmed)} confirmed, "
                         f"{len(unconfirmed.sent)} unconfirmed sent, {len(got)} recovered, "
                         f"{dropped} unsynced bytes cut\n")
        self.assertEqual(lost, set(), f"seed {seed}: confirmed publishes lost")
        self.assertEqual(unexpected, set(), f"seed {seed}: messages nobody sent")


@unittest.skipIf(ON_RABBITMQ, "kills Conveyor and reads its data directory")
class AmqpRestartTest(ConveyorTestCase):
    """What a kill -9 leaves of AMQP state that belonged to connections (docs/amqp.md, "After a
    crash or restart"): unacked deliveries are ready at once, exclusive queues are gone."""

    start_server = False
    case_timeout = 60.0

    def setUp(self):
        super().setUp()
        # The default --amqp-consumer-timeout (30 min): a delivery that waited for its lease
        # to end would never come back within this test.
        self.server = self.start_conveyor(amqp=True, port=free_port_outside_ephemeral_range())

    def connect(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.server.amqp_port, connection_attempts=3, socket_timeout=5,
            blocked_connection_timeout=10, stack_timeout=10))
        self.addCleanup(self.close_quietly, conn)
        return conn

    @staticmethod
    def close_quietly(conn):
        try:
            if conn.is_open:
                conn.close()
        except AMQPError:
            pass  # a connection to the server before its restart

    def queues(self):
        return info_section(self.server, "queues")

    def topology_text(self):
        path = os.path.join(self.server.data_dir, "amqp-topology.json")
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8") as f:
            return f.read()

    def sync_log(self):
        """An ENQUEUE's reply waits for the log to be synced up to it, so every record logged
        before it (the leases of the deliveries above) is on disk once it returns."""
        self.assertTrue(self.server.client().execute_command("ENQUEUE", "sync", "x"))

    def test_unacked_deliveries_are_ready_at_once_after_kill9(self):
        ch = self.connect().channel()
        ch.queue_declare("jobs", durable=True)
        ch.queue_declare("feed", durable=True)
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", "jobs", f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
        for i in range(2):
            ch.basic_publish("", "feed", f"f{i}".encode(), pika.BasicProperties(delivery_mode=2))
        got = [ch.basic_get("jobs", auto_ack=False) for _ in range(2)]
        self.assertEqual([body for _, _, body in got], [b"m0", b"m1"])
        consumer = self.connect().channel()
        consumer.basic_qos(prefetch_count=1)
        delivered = []
        consumer.basic_consume("feed", lambda c, m, p, body: delivered.append(body))
        wait_until(lambda: consumer.connection.process_data_events(0.05) or delivered, 10,
                   message="a delivery to the consumer")
        # A RESP lease is no session's: its worker may still ACK it after the restart.
        r = self.server.client()
        resp_task = lease(r, "feed")[0]
        self.sync_log()
        self.assertEqual(self.queues()["jobs"], "ready=3,delayed=0,leased=2,dead=0")
        self.assertEqual(self.queues()["feed"], "ready=0,delayed=0,leased=2,dead=0")

        self.server.kill9()
        self.server.restart()
        # At once: no wait for --amqp-consumer-timeout.
        self.assertEqual(self.queues()["jobs"], "ready=5,delayed=0,leased=0,dead=0")
        self.assertEqual(self.queues()["feed"], "ready=1,delayed=0,leased=1,dead=0")
        self.assertIn("released 3 AMQP deliveries", self.server.log_text())
        r = self.server.client()
        self.assertEqual(r.execute_command("ACK", resp_task["lease"]), 1)

        ch = self.connect().channel()
        again = {}
        for _ in range(5):
            method, _, body = ch.basic_get("jobs", auto_ack=True)
            self.assertIsNotNone(method)
            again[body] = method.redelivered
        self.assertEqual(again, {b"m0": True, b"m1": True, b"m2": False, b"m3": False,
                                 b"m4": False})
        method, _, body = ch.basic_get("feed", auto_ack=True)
        self.assertEqual((body, method.redelivered), (delivered[0], True))

    def test_exclusive_queue_is_gone_after_kill9(self):
        conn = self.connect()
        ch = conn.channel()
        name = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_declare("kept", durable=True)
        ch.exchange_declare("events", "fanout", durable=True)
        ch.queue_bind(name, "events")
        ch.queue_bind("kept", "events")
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("events", "", f"e{i}".encode(), pika.BasicProperties(delivery_mode=2))
        self.assertIsNotNone(ch.basic_get(name, auto_ack=False)[0])  # unacked at the crash
        self.sync_log()
        self.assertEqual(self.queues()[name], "ready=2,delayed=0,leased=1,dead=0")

        self.server.kill9()
        self.server.restart()
        queues = self.queues()
        self.assertNotIn(name, queues)
        self.assertEqual(queues["kept"], "ready=3,delayed=0,leased=0,dead=0")
        self.assertIn(f"exclusive queue '{name}' deleted at restart", self.server.log_text())
        r = self.server.client()
        self.assertEqual(lease(r, name), [])

        ch = self.connect().channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as caught:
            ch.queue_declare(name, passive=True)
        self.assertEqual(caught.exception.reply_code, 404)
        self.assertNotIn(name, self.topology_text())
        self.assertIn('"kept"', self.topology_text())
        # The durable exchange still routes to the durable queue, and to nothing else.
        ch = self.connect().channel()
        ch.confirm_delivery()
        ch.basic_publish("events", "", b"after", pika.BasicProperties(delivery_mode=2))
        self.assertEqual(self.queues()["kept"], "ready=4,delayed=0,leased=0,dead=0")
        self.assertNotIn(name, self.queues())

    def test_passive_declare_of_a_resp_queue_writes_no_topology(self):
        r = self.server.client()
        r.execute_command("ENQUEUE", "resp-q", "x")
        ch = self.connect().channel()
        self.assertEqual(ch.queue_declare("resp-q", passive=True).method.message_count, 1)
        ch.exchange_declare("durable-ex", "direct", durable=True)  # a durable change: saved
        self.assertIn("durable-ex", self.topology_text())
        self.assertNotIn("resp-q", self.topology_text())
        # Bound from a durable exchange, the queue is saved with its binding: both come back.
        ch.queue_bind("resp-q", "durable-ex", "k")
        self.assertIn("resp-q", self.topology_text())
        # Emptied in the core: from now on only the topology file keeps the queue.
        self.assertEqual(r.execute_command("ACK", lease_one(r, "resp-q")["lease"]), 1)
        self.server.restart()
        ch = self.connect().channel()
        ch.confirm_delivery()
        ch.basic_publish("durable-ex", "k", b"routed", pika.BasicProperties(delivery_mode=2),
                         mandatory=True)
        r = self.server.client()
        self.assertEqual(lease_one(r, "resp-q")["payload"], "routed")


if __name__ == "__main__":
    unittest.main()
