"""amqp-tools 0.11 (rabbitmq-c's command-line tools, Debian package amqp-tools, installed by
scripts/install-deps.sh) against Conveyor's AMQP port: amqp-declare-queue, amqp-publish to the
default exchange and to amq.fanout, amqp-consume (acking, -A no-ack, -e with a server-named
queue and an empty consumer tag filled in by the broker), amqp-get, amqp-delete-queue.
Validated against RabbitMQ with CONVEYOR_AMQP_TARGET=rabbitmq (amqp_target.py).

Without amqp-tools the tests are skipped with the reason; CONVEYOR_REQUIRE_AMQP_TOOLS=1 makes
that an error instead."""

import contextlib
import os
import signal
import subprocess
import time
import unittest

import pika

from amqp_target import AmqpTestCase, conveyor_only, require_programs
from harness import task_info, wait_until

TOOLS = ("amqp-publish", "amqp-consume", "amqp-declare-queue", "amqp-get",
         "amqp-delete-queue")


@require_programs(*TOOLS)
class AmqpToolsTest(AmqpTestCase):

    def server_arg(self):
        # "-s host:port" works too but prints a deprecation warning on stderr.
        return ["-s", self.host, "--port", str(self.port)]

    def tool(self, name, *args, timeout=15, input=None):
        """Runs one tool to completion in its own process group (killed whole on timeout);
        returns the CompletedProcess (stdout and stderr as text)."""
        proc = subprocess.Popen([name, *self.server_arg(), *[str(a) for a in args]],
                                stdin=subprocess.PIPE if input is not None else
                                subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            out, err = proc.communicate()
            self.fail(f"{name} {args} still running after {timeout}s; stdout {out!r} "
                      f"stderr {err!r}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def ok(self, name, *args, **kwargs):
        r = self.tool(name, *args, **kwargs)
        self.assertEqual(r.returncode, 0, f"{name} {args}: {r.stderr}")
        return r

    def spawn(self, name, *args):
        proc = subprocess.Popen([name, *self.server_arg(), *[str(a) for a in args]],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.addCleanup(self.kill, proc)
        return proc

    @staticmethod
    def kill(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def message_count(self, name):
        conn = self.connect()
        try:
            return conn.channel().queue_declare(name, passive=True).method.message_count
        finally:
            self._close_quietly(conn)

    # ---- tests -------------------------------------------------------------------------

    def test_publish_then_consume_with_ack(self):
        q = self.qname()
        r = self.ok("amqp-declare-queue", "-q", q)
        self.assertEqual(r.stdout.strip(), q)
        self.ok("amqp-publish", "-r", q, "-b", "hello from amqp-publish")
        self.assertEqual(self.message_count(q), 1)
        r = self.ok("amqp-consume", "-q", q, "-c", 1, "cat")
        self.assertEqual(r.stdout, "hello from amqp-publish")
        # acked after cat exited: nothing comes back
        self.assertEqual(self.message_count(q), 0)
        conn = self.connect()
        self.assertEqual(conn.channel().basic_get(q), (None, None, None))

    def test_consume_no_ack(self):
        q = self.qname()
        self.ok("amqp-declare-queue", "-q", q)
        self.ok("amqp-publish", "-r", q, "-b", "one")
        self.ok("amqp-publish", "-r", q, "-b", "two")
        r = self.ok("amqp-consume", "-q", q, "-A", "-c", 2, "cat")
        self.assertEqual(r.stdout, "onetwo")
        self.assertEqual(self.message_count(q), 0)

    def test_prefetch_and_stdin_body(self):
        q = self.qname()
        self.ok("amqp-declare-queue", "-q", q)
        self.ok("amqp-publish", "-r", q, input="line one\nline two\n")
        r = self.ok("amqp-consume", "-q", q, "-p", 1, "-c", 1, "cat")
        self.assertEqual(r.stdout, "line one\nline two\n")

    def test_publish_properties_reach_pika(self):
        q = self.qname()
        self.ok("amqp-declare-queue", "-q", q, "-d")
        self.ok("amqp-publish", "-r", q, "-p", "-C", "text/plain", "-E", "utf-8",
                "-t", "replies", "-H", "x-trace: abc", "-b", "props")
        conn = self.connect()
        m, props, body = conn.channel().basic_get(q, auto_ack=True)
        self.assertEqual(body, b"props")
        self.assertEqual((props.content_type, props.content_encoding, props.reply_to,
                          props.delivery_mode), ("text/plain", "utf-8", "replies", 2))
        self.assertEqual(props.headers, {"x-trace": "abc"})

    def test_get_and_delete_queue(self):
        q = self.qname()
        self.ok("amqp-declare-queue", "-q", q)
        r = self.tool("amqp-get", "-q", q)
        self.assertNotEqual(r.returncode, 0)  # empty queue
        self.ok("amqp-publish", "-r", q, "-b", "got")
        r = self.ok("amqp-get", "-q", q)
        self.assertEqual(r.stdout, "got")
        self.ok("amqp-publish", "-r", q, "-b", "left behind")
        r = self.ok("amqp-delete-queue", "-q", q)
        self.assertEqual(r.stdout.strip(), "1")  # messages deleted with the queue
        conn = self.connect()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare(q, passive=True)
        self.assertEqual(e.exception.reply_code, 404)

    def test_consume_from_fanout_with_a_server_named_queue(self):
        # -r is needed by the tool, not the broker: amqp-tools 0.11's amqp-consume -e without
        # -r passes a NULL routing key to amqp_cstring_bytes and segfaults before it binds
        # (against RabbitMQ as well). A fanout exchange ignores the key.
        consumer = self.spawn("amqp-consume", "-e", "amq.fanout", "-r", "ignored", "-c", 1,
                              "cat")
        # The consumer declares a server-named queue and binds it; until then a message to
        # amq.fanout reaches nobody, so publish until it has received one.
        sent = []
        deadline = time.monotonic() + 15
        while consumer.poll() is None:
            self.assertLess(time.monotonic(), deadline, "amqp-consume got nothing")
            body = f"fanout-{len(sent)}"
            self.ok("amqp-publish", "-e", "amq.fanout", "-b", body)
            sent.append(body)
            with contextlib.suppress(subprocess.TimeoutExpired):
                consumer.wait(timeout=0.2)
        out, err = consumer.communicate(timeout=5)
        self.assertEqual(consumer.returncode, 0, err)
        self.assertIn(out, sent)

    @conveyor_only("RESP side of the same queue")
    def test_tools_and_resp_share_the_queue(self):
        self.resp.execute_command("ENQUEUE", "tools", "enqueued over RESP")
        r = self.ok("amqp-consume", "-q", "tools", "-c", 1, "cat")
        self.assertEqual(r.stdout, "enqueued over RESP")
        self.ok("amqp-publish", "-r", "tools", "-b", "published by amqp-publish")
        self.assertEqual(self.resp.rpop("tools"), "published by amqp-publish")


if __name__ == "__main__":
    unittest.main()
