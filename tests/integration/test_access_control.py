"""One access decision for RESP and AMQP (docs/users.md):

- a user removed from the users file and SIGHUP: its AMQP connections are closed with 320
  CONNECTION_FORCED (they used to go on with no restrictions at all), its blocked RESP
  commands are answered -NOAUTH, its next RESP command -NOAUTH; a user whose rules changed
  loses the consumers and blocked commands the new rules do not allow;
- exchanges: declare/delete need admin on the exchange, queue.bind needs enqueue on the queue
  and consume on the exchange, a publish needs enqueue on its exchange and never fails
  because of another user's binding;
- a task id of a queue the user has no verb on is answered as an unknown id (no NOPERM naming
  the queue), by TASK, RESULT, CANCEL, REQUEUE and the lease commands."""

import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import pika
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from harness import (HOST, ConveyorTestCase, RespError, conveyor_bin, pairs_to_dict,
                     wait_until)

USERS = (
    ("admin", "apw", ["all:*"]),
    ("alice", "alpw", ["enqueue:alice-*", "consume:alice-*", "inspect:alice-*"]),
    ("bob", "bpw", ["all:bob-*"]),
)


def user_cli(*args):
    proc = subprocess.run([conveyor_bin(), "user", *args], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr


class AccessCase(ConveyorTestCase):
    start_server = False
    case_timeout = 60.0

    def setUp(self):
        super().setUp()
        d = tempfile.mkdtemp(prefix="conveyor-access-")
        self.addCleanup(shutil.rmtree, d, True)
        self.users = os.path.join(d, "users")
        for name, pw, rules in USERS:
            self.set_user(name, pw, *rules)
        self.server = self.start_conveyor("--users", self.users, amqp=True)
        self.admin = self.resp("admin", "apw")

    def set_user(self, name, password, *rules):
        args = ["add", "--users", self.users, name, "--password", password]
        for r in rules:
            args += ["--allow", r]
        user_cli(*args)

    def reload(self):
        before = self.server.log_text().count("reloaded")
        self.server.send_signal(signal.SIGHUP)
        wait_until(lambda: self.server.log_text().count("reloaded") > before, 10,
                   message="users file reloaded")

    def resp(self, name, password):
        conn = self.raw(timeout=10.0)
        self.assertEqual(conn.command("AUTH", name, password), "OK")
        return conn

    def amqp(self, name, password):
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            host=HOST, port=self.server.amqp_port,
            credentials=pika.PlainCredentials(name, password), heartbeat=0,
            connection_attempts=1, socket_timeout=10))

        def close():
            if conn.is_open:
                try:
                    conn.close()
                except Exception:  # already closed by the broker
                    pass
        self.addCleanup(close)
        return conn

    def assertRefused(self, call, code=403):
        with self.assertRaises(ChannelClosedByBroker) as e:
            call()
        self.assertEqual(e.exception.reply_code, code, e.exception.reply_text)
        return e.exception.reply_text


class RemovedUserTest(AccessCase):

    def test_removed_users_amqp_connection_is_closed_320_and_resp_gets_noauth(self):
        self.assertIsInstance(self.admin.command("ENQUEUE", "bob-private", "bob's payload"),
                              bytes)
        self.admin.command("ENQUEUE", "other", "x")
        conn = self.amqp("alice", "alpw")
        text = self.assertRefused(lambda: conn.channel().basic_get("bob-private"))
        self.assertIn("bob-private", text)
        alice_resp = self.resp("alice", "alpw")
        self.assertIsInstance(alice_resp.command("ENQUEUE", "alice-q", "x"), bytes)

        user_cli("del", "--users", self.users, "alice")
        self.reload()
        # The broker closes the connection at once (access_changed); had it not, the next
        # method must still not run unrestricted.
        with self.assertRaises(ConnectionClosedByBroker) as e:
            conn.process_data_events(time_limit=5)
            ch = conn.channel()
            ch.basic_get("bob-private")
            ch.queue_purge("other")
        self.assertEqual(e.exception.reply_code, 320)
        self.assertIn("CONNECTION_FORCED", e.exception.reply_text)
        self.assertEqual(self.admin.command("QLEN", "bob-private"), 1)
        self.assertEqual(self.admin.command("QLEN", "other"), 1)
        self.assertIn("is no longer in the users file", self.server.log_text())
        # RESP: the same user's connection must authenticate again.
        self.assertEqual(alice_resp.command("QLEN", "alice-q"),
                         RespError("NOAUTH Authentication required."))
        # And a new AMQP login is refused.
        with self.assertRaises(pika.exceptions.AMQPConnectionError):
            self.amqp("alice", "alpw")

    def test_blocked_resp_commands_of_removed_and_changed_users_are_answered(self):
        alice = self.resp("alice", "alpw")
        bob = self.resp("bob", "bpw")
        alice.send(b"*5\r\n$5\r\nLEASE\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$4\r\nFROM\r\n"
                   b"$7\r\nalice-q\r\n")
        bob.send(b"*5\r\n$5\r\nLEASE\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$4\r\nFROM\r\n$5\r\nbob-q\r\n")
        wait_until(lambda: "blocked_clients:2" in self.admin.command("INFO", "clients").decode(),
                   10, message="two blocked clients")
        user_cli("del", "--users", self.users, "alice")
        self.set_user("bob", "bpw", "enqueue:bob-*")  # no longer consume
        self.reload()
        self.assertEqual(alice.read_reply(), RespError("NOAUTH Authentication required."))
        reply = bob.read_reply()
        self.assertIsInstance(reply, RespError)
        self.assertTrue(reply.startswith("NOPERM User bob has no permissions to consume on the "
                                         "'bob-q' queue"), reply)
        # Nobody waits for those queues any more: new tasks stay ready.
        self.admin.command("ENQUEUE", "alice-q", "a")
        self.admin.command("ENQUEUE", "bob-q", "b")
        self.assertEqual(self.admin.command("QLEN", "alice-q"), 1)
        self.assertEqual(self.admin.command("QLEN", "bob-q"), 1)
        self.assertEqual(bob.command("LEASE", "FROM", "bob-q"),
                         RespError("NOPERM User bob has no permissions to consume on the "
                                   "'bob-q' queue"))

    def test_changed_users_amqp_consumer_is_cancelled(self):
        conn = self.amqp("bob", "bpw")
        ch = conn.channel()
        ch.queue_declare("bob-jobs")
        cancelled, got = [], []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame))
        ch.basic_consume("bob-jobs", lambda c, m, p, b: got.append(b))
        self.set_user("bob", "bpw", "enqueue:bob-*", "admin:bob-*")  # no longer consume
        self.reload()
        deadline = 10
        while not cancelled and deadline > 0:
            conn.process_data_events(time_limit=0.2)
            deadline -= 0.2
        self.assertTrue(cancelled, "no basic.cancel after bob lost consume")
        self.admin.command("ENQUEUE", "bob-jobs", "not for bob")
        conn.process_data_events(time_limit=0.5)
        self.assertEqual(got, [])
        self.assertEqual(self.admin.command("QLEN", "bob-jobs"), 1)
        # The connection itself stays: bob may still publish.
        ch.confirm_delivery()
        ch.basic_publish("", "bob-jobs", b"by bob")
        self.assertEqual(self.admin.command("QLEN", "bob-jobs"), 2)


class ExchangePermissionTest(AccessCase):

    def test_binding_needs_consume_on_the_exchange(self):
        admin = self.amqp("admin", "apw").channel()
        admin.exchange_declare("payments", "fanout")
        admin.queue_declare("payments-audit")
        admin.queue_bind("payments-audit", "payments")
        conn = self.amqp("alice", "alpw")
        ch = conn.channel()
        ch.queue_declare("alice-spy")
        text = self.assertRefused(lambda: ch.queue_bind("alice-spy", "payments"))
        self.assertIn("exchange 'payments'", text)
        self.assertIn("needs consume", text)
        ch = conn.channel()
        self.assertRefused(lambda: ch.queue_bind("alice-spy", "amq.topic", "#"))
        admin.confirm_delivery()
        admin.basic_publish("payments", "", b"card 4242")
        admin.basic_publish("amq.topic", "a.b", b"topic message")
        self.assertEqual(self.admin.command("QLEN", "payments-audit"), 1)
        self.assertEqual(self.admin.command("QLEN", "alice-spy"), 0)

    def test_exchange_declare_and_delete_need_admin(self):
        bob = self.amqp("bob", "bpw").channel()
        bob.exchange_declare("bob-ex", "direct")
        conn = self.amqp("alice", "alpw")
        text = self.assertRefused(lambda: conn.channel().exchange_delete("bob-ex"))
        self.assertIn("needs admin", text)
        # alice has no admin even on her own names: she cannot declare exchanges.
        self.assertRefused(lambda: conn.channel().exchange_declare("alice-ex", "direct"))
        bob.exchange_declare("bob-ex", "direct", passive=True)  # still there
        bob.exchange_declare("bob-ex2", "fanout")
        bob.exchange_delete("bob-ex2")
        self.assertRefused(lambda: bob.exchange_declare("other-ex", "direct"))

    def test_publish_never_fails_because_of_another_users_binding(self):
        # bob lets alice read his exchange: she binds her queue to it.
        self.set_user("alice", "alpw", "enqueue:alice-*", "consume:alice-*", "consume:bob-ex")
        self.reload()
        bob_conn = self.amqp("bob", "bpw")
        bob = bob_conn.channel()
        bob.exchange_declare("bob-ex", "direct")
        bob.queue_declare("bob-q")
        bob.queue_bind("bob-q", "bob-ex", "k")
        alice = self.amqp("alice", "alpw").channel()
        alice.queue_declare("alice-q")
        alice.queue_bind("alice-q", "bob-ex", "k")
        bob.confirm_delivery()
        for i in range(3):
            bob.basic_publish("bob-ex", "k", f"m{i}".encode())
        self.assertTrue(bob.is_open)
        self.assertEqual(self.admin.command("QLEN", "bob-q"), 3)
        self.assertEqual(self.admin.command("QLEN", "alice-q"), 3)
        # A publish is checked on its exchange: alice may not publish to bob's.
        self.assertRefused(lambda: alice.basic_publish("bob-ex", "k", b"x") or
                           alice.queue_declare("alice-q", passive=True))
        # The default exchange is checked on the routing key, the queue it names.
        alice = self.amqp("alice", "alpw").channel()
        text = self.assertRefused(lambda: alice.basic_publish("", "bob-q", b"x") or
                                  alice.queue_declare("alice-q", passive=True))
        self.assertIn("queue 'bob-q'", text)


class HiddenTaskTest(AccessCase):

    def test_other_users_task_ids_are_answered_as_unknown(self):
        bob = self.resp("bob", "bpw")
        bob_id = bob.command("ENQUEUE", "bob-q", "secret")
        alice = self.resp("alice", "alpw")
        unknown = "ffffffffffffff"
        for cmd, expected in (("TASK", None), ("RESULT", None)):
            self.assertEqual(alice.command(cmd, bob_id), expected, cmd)
            self.assertEqual(alice.command(cmd, unknown), expected, cmd)
        self.assertIsNone(alice.command("RESULT", bob_id, "WAIT", "60000"))
        # CANCEL and REQUEUE are admin: alice has none anywhere, yet the replies name no queue.
        self.assertEqual(alice.command("CANCEL", bob_id), alice.command("CANCEL", unknown))
        self.assertEqual(alice.command("REQUEUE", bob_id), alice.command("REQUEUE", unknown))
        lease = pairs_to_dict(bob.command("LEASE", "FROM", "bob-q")[0])["lease"].decode()
        for cmd in (("ACK", lease), ("FAIL", lease, "e"), ("RELEASE", lease),
                    ("EXTEND", lease, "1000")):
            reply = alice.command(*cmd)
            self.assertTrue(reply.startswith("LEASELOST"), (cmd, reply))
            self.assertNotIn("bob-q", reply)
        self.assertEqual(alice.command("RESULT", bob_id, "WAIT"), RespError("ERR syntax error"))
        # bob's task is untouched.
        self.assertEqual(pairs_to_dict(bob.command("TASK", bob_id))["state"], b"leased")
        self.assertEqual(bob.command("ACK", lease), 1)
        # A queue alice has a verb on is named: she lacks only admin there.
        own = alice.command("ENQUEUE", "alice-q", "x")
        self.assertEqual(alice.command("CANCEL", own),
                         RespError("NOPERM User alice has no permissions to admin on the "
                                   "'alice-q' queue"))


if __name__ == "__main__":
    unittest.main()
