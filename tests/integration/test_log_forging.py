"""What clients can put into the server log (docs/users.md, "What the log shows of clients"):
text they send (a user name in AUTH or AMQP PLAIN, a close reason) is escaped, so CR/LF cannot
forge lines and escape codes reach no terminal; and the lines a client can cause at will (a
failed AUTH) are limited per client host, 10 per 5 s, with one line saying how many were
suppressed."""

import re
import socket
import time
import unittest

import pika
from pika.exceptions import AuthenticationError, ProbableAuthenticationError

from harness import HOST, ConveyorTestCase, encode_command, wait_until

FORGED = "[2026-01-01 00:00:00.000] [info] AUTH ok for admin"
HOSTILE_USER = "mallory\r\n" + FORGED + "\x1b[2J\x1b]0;owned\x07"


class LogForgingTest(ConveyorTestCase):
    server_args = ("--requirepass", "s3cret", "--amqp-port", "0")

    def amqp_server(self):
        return self.start_conveyor("--requirepass", "s3cret", amqp=True)

    def log_lines(self, server=None):
        return (server or self.server).log_text().split("\n")

    def assert_not_forged(self, server=None):
        text = (server or self.server).log_text()
        self.assertNotIn("\x1b", text, "an escape code reached the log")
        self.assertNotIn("\x07", text)
        for line in self.log_lines(server):
            self.assertFalse(line.startswith(FORGED[:20]), f"forged line in the log: {line!r}")
            self.assertNotIn("\r", line)

    def auth_failure_lines(self, server=None):
        return [l for l in self.log_lines(server) if "AUTH failed for user" in l]

    def test_user_name_in_auth_is_escaped(self):
        with self.raw() as conn:
            reply = conn.command("AUTH", HOSTILE_USER, "wrong")
            self.assertTrue(reply.startswith("WRONGPASS"), reply)
        lines = wait_until(self.auth_failure_lines, 5.0, message="the AUTH failure line")
        self.assert_not_forged()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("mallory\\x0D\\x0A[2026-01-01", lines[0])
        self.assertIn("\\x1B[2J\\x1B]0;owned\\x07", lines[0])

    def test_user_name_in_amqp_plain_is_escaped(self):
        server = self.amqp_server()
        params = pika.ConnectionParameters(
            HOST, server.amqp_port, credentials=pika.PlainCredentials(HOSTILE_USER, "wrong"),
            connection_attempts=1, socket_timeout=10, blocked_connection_timeout=10)
        with self.assertRaises((ProbableAuthenticationError, AuthenticationError)):
            pika.BlockingConnection(params)
        lines = wait_until(lambda: self.auth_failure_lines(server), 5.0,
                           message="the AUTH failure line")
        self.assert_not_forged(server)
        self.assertIn("mallory\\x0D\\x0A[2026-01-01", lines[0])

    def test_amqp_close_reason_is_escaped(self):
        server = self.amqp_server()
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            HOST, server.amqp_port, credentials=pika.PlainCredentials("default", "s3cret"),
            connection_attempts=1, socket_timeout=10))
        conn.close(reply_code=320, reply_text="bye\n" + FORGED)
        wait_until(lambda: "closed the connection: 320" in server.log_text(), 5.0,
                   message="the close line")
        self.assert_not_forged(server)
        self.assertIn("bye\\x0A[2026", server.log_text())

    def test_long_user_name_is_cut(self):
        with self.raw() as conn:
            conn.command("AUTH", "u" * 5000, "wrong")
        line = wait_until(self.auth_failure_lines, 5.0, message="the AUTH failure line")[0]
        self.assertLess(len(line), 400)
        self.assertRegex(line, r"more bytes\)")

    def failed_auths(self, count, source=None):
        """`count` failed AUTHs pipelined on one connection (from `source`, a local address)."""
        sock = socket.create_connection((HOST, self.server.port), timeout=10,
                                        source_address=(source, 0) if source else None)
        try:
            sock.sendall(encode_command("AUTH", "nobody", "wrong") * count)
            got = b""
            while got.count(b"\r\n") < count:
                chunk = sock.recv(65536)
                self.assertTrue(chunk, "connection closed")
                got += chunk
            self.assertEqual(got.count(b"-WRONGPASS"), count)
        finally:
            sock.close()

    def suppressed_total(self):
        counts = re.findall(r"(\d+) more log line\(s\) caused by clients of 127\.0\.0\.1 were "
                            r"suppressed", self.server.log_text())
        return sum(int(c) for c in counts)

    def test_failed_auths_are_rate_limited_per_host_with_a_count(self):
        self.failed_auths(200)
        # At most 10 lines per 5 s window; the rest are counted and reported once the window
        # ends (within about a second after it).
        wait_until(lambda: len(self.auth_failure_lines()) + self.suppressed_total() == 200,
                   15.0, interval=0.2, message="the count of suppressed lines")
        logged = len(self.auth_failure_lines())
        self.assertGreaterEqual(logged, 10)
        self.assertLessEqual(logged, 20, "the lines were not limited")
        self.assertGreaterEqual(self.suppressed_total(), 180)
        # The limit is per host: another address still gets its line at once.
        before = len(self.auth_failure_lines())
        self.failed_auths(1, source="127.0.0.2")
        wait_until(lambda: any("127.0.0.2" in l for l in self.auth_failure_lines()[before:]),
                   5.0, message="the line of the other host")

    def test_after_the_window_lines_are_written_again(self):
        self.failed_auths(30)
        wait_until(lambda: self.suppressed_total() > 0, 15.0, interval=0.2,
                   message="the suppressed count")
        before = len(self.auth_failure_lines())
        time.sleep(0.1)
        self.failed_auths(1)
        wait_until(lambda: len(self.auth_failure_lines()) == before + 1, 5.0,
                   message="a new line once the window is over")


if __name__ == "__main__":
    unittest.main()
