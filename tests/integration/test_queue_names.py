"""Queue names (docs/commands.md, "Queue names"): 1-255 bytes without control bytes, checked by
every RESP command that names queues and by AMQP queue.declare (406), so a name cannot inject
fields into INFO (before this rule, "alice-x\\r\\nlog_write_status:err\\r\\n..." made an admin's INFO
report a failed log, a full disk and a replica)."""

import unittest

import pika
from pika.exceptions import ChannelClosedByBroker

from harness import ConveyorTestCase, RespError, info_section

INJECTED = "alice-x\r\nlog_write_status:err\r\nlog_disk_full:1\r\nrole:slave\r\n#"
LONG = "q" * 256
HUGE = "q" * 70000
CONTROL_ERROR = "ERR queue name contains a control byte"
LENGTH_ERROR = "ERR queue name is longer than 255 bytes"


def commands_naming(queue):
    """Every command that names a queue, with `queue` where a queue goes."""
    return [
        ("ENQUEUE", queue, "p"),
        ("LEASE", "FROM", "ok", queue),
        ("LEASE", "COUNT", "2", "FROM", queue),
        ("QLEN", queue),
        ("DEAD", queue),
        ("QPURGE", queue),
        ("LPUSH", queue, "e"),
        ("RPUSH", queue, "e"),
        ("LPOP", queue),
        ("RPOP", queue, "2"),
        ("BLPOP", "ok", queue, "0.01"),
        ("BRPOP", queue, "0.01"),
        ("LLEN", queue),
        ("DEL", "ok", queue),
    ]


class QueueNameTest(ConveyorTestCase):

    def test_injection_through_a_queue_name_is_refused_and_info_stays_clean(self):
        conn = self.raw()
        reply = conn.command("ENQUEUE", INJECTED, "payload")
        self.assertIsInstance(reply, RespError)
        self.assertTrue(reply.startswith(CONTROL_ERROR), reply)
        persistence = info_section(self.server, "persistence")
        self.assertEqual(persistence["log_write_status"], "ok")
        self.assertEqual(persistence["log_disk_full"], "0")
        everything = conn.command("INFO", "all").decode()
        self.assertNotIn("role:slave", everything)
        self.assertNotIn("alice-x", everything)
        self.assertNotIn("alice-x", conn.command("QUEUES"))

    def test_every_command_naming_queues_checks_each_name(self):
        conn = self.raw()
        for bad, error in ((INJECTED, CONTROL_ERROR), ("a\x00b", CONTROL_ERROR),
                           ("tab\there", CONTROL_ERROR), ("del\x7f", CONTROL_ERROR),
                           (LONG, LENGTH_ERROR), (HUGE, LENGTH_ERROR)):
            for cmd in commands_naming(bad):
                reply = conn.command(*cmd)
                self.assertIsInstance(reply, RespError, f"{cmd[0]} took {bad[:20]!r}")
                self.assertTrue(reply.startswith(error), f"{cmd[0]}: {reply}")
        self.assertErrorPrefix(conn.command("ENQUEUE", "", "p"), "ERR queue name must not be empty")
        self.assertEqual(conn.command("QUEUES"), [])
        self.assertEqual(conn.command("QLEN", "ok"), 0)

    def test_names_up_to_255_bytes_with_any_other_bytes_are_accepted(self):
        r = self.client(decode=False)
        names = ["q" * 255, "caf\u00e9 \u20ac queue".encode(), b"a:b=c,d #x", b"\xff\xfe",
                 "celery@host".encode()]
        for name in names:
            name = name.encode() if isinstance(name, str) else name
            self.assertTrue(r.execute_command("ENQUEUE", name, b"p"))
            self.assertEqual(r.execute_command("QLEN", name), 1)
            self.assertEqual(r.rpop(name), b"p")

    def test_info_escapes_names_it_prints(self):
        r = self.client(decode=False)
        r.execute_command("ENQUEUE", b"weird\xffname\\x", b"p")
        queues = info_section(self.server, "queues")
        self.assertIn("weird\\xFFname\\\\x", queues)


class AmqpQueueNameTest(ConveyorTestCase):
    start_server = False

    def setUp(self):
        super().setUp()
        self.server = self.start_conveyor(amqp=True)
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.server.amqp_port, connection_attempts=1, socket_timeout=10))
        self.addCleanup(self.conn.close)

    def test_declare_with_a_control_byte_is_406(self):
        ch = self.conn.channel()
        with self.assertRaises(ChannelClosedByBroker) as e:
            ch.queue_declare(INJECTED)
        self.assertEqual(e.exception.reply_code, 406)
        self.assertIn("PRECONDITION_FAILED - queue name contains a control byte",
                      e.exception.reply_text)
        self.assertEqual(self.server.client().execute_command("QUEUES"), [])

    def test_declare_of_255_bytes_works_and_resp_reaches_it(self):
        ch = self.conn.channel()
        name = "a" * 255
        ch.queue_declare(name)
        ch.basic_publish("", name, b"hello")
        r = self.server.client()
        self.addCleanup(r.close)
        self.assertEqual(r.execute_command("QLEN", name), 1)
        self.assertEqual(r.rpop(name), "hello")


if __name__ == "__main__":
    unittest.main()
