"""Power loss under AMQP publishes (RELIABILITY.md T2 for publisher confirms), Conveyor only.

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
from harness import ConveyorTestCase, lease
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
        server = self.start_conveyor("--fsync", "always", "--enable-debug-command", "yes",
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
            for t in tasks:
                drained.append(t["payload"])
                r.execute_command("ACK", t["lease"])
        got = set(drained)
        lost = confirmed.confirmed - got
        unexpected = got - confirmed.sent - unconfirmed.sent
        sys.stderr.write(f"[amqp power loss] {len(confirmed.confirmed)} confirmed, "
                         f"{len(unconfirmed.sent)} unconfirmed sent, {len(got)} recovered, "
                         f"{dropped} unsynced bytes cut\n")
        self.assertEqual(lost, set(), f"seed {seed}: confirmed publishes lost")
        self.assertEqual(unexpected, set(), f"seed {seed}: messages nobody sent")


if __name__ == "__main__":
    unittest.main()
