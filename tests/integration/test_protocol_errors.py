"""Byte-exact protocol errors over raw sockets (as Redis answers them): each gets its error
and a close within 1 s, and the server keeps serving other clients."""

import unittest

from harness import ConveyorTestCase

# (bytes sent, exact reply before the close)
FATAL_INPUTS = [
    (b"*3000000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$2000000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$-10\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$blabla\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n"),
    (b"*blabla\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
]


class ProtocolErrorsTest(ConveyorTestCase):

    def check_fatal(self, sent, expected):
        conn = self.raw()
        conn.send(sent)
        self.assertEqual(conn.read_until_closed(1.0), expected, f"after sending {sent!r}")
        self.assertServerAlive()

    def test_huge_multibulk_length_is_refused_and_closed(self):
        self.check_fatal(*FATAL_INPUTS[0])

    def test_huge_bulk_length_is_refused_and_closed(self):
        self.check_fatal(*FATAL_INPUTS[1])

    def test_negative_bulk_length_is_refused_and_closed(self):
        self.check_fatal(*FATAL_INPUTS[2])

    def test_non_numeric_bulk_length_is_refused_and_closed(self):
        self.check_fatal(*FATAL_INPUTS[3])

    def test_missing_dollar_is_refused_and_closed(self):
        self.check_fatal(*FATAL_INPUTS[4])

    def test_non_numeric_multibulk_length_is_refused_and_closed(self):
        self.check_fatal(*FATAL_INPUTS[5])

    def test_each_bad_input_split_byte_by_byte(self):
        # The same inputs trickled one byte per send still get the same error and close.
        for sent, expected in FATAL_INPUTS:
            with self.subTest(sent=sent):
                conn = self.raw()
                for i in range(len(sent)):
                    conn.send(sent[i:i + 1])
                self.assertEqual(conn.read_until_closed(1.0), expected)
        self.assertServerAlive()

    def test_negative_multibulk_length_is_ignored(self):
        conn = self.raw()
        conn.send(b"*-10\r\n")
        conn.send(b"PING\r\n")
        self.assertEqual(conn.read_exactly(7), b"+PONG\r\n")

    def test_good_commands_before_the_bad_one_are_answered(self):
        conn = self.raw()
        conn.send(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$-10\r\n")
        self.assertEqual(conn.read_until_closed(1.0),
                         b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n")
        self.assertServerAlive()

    def test_unending_lines_are_refused_and_closed(self):
        # Redis's "Protocol desync regression test" (tests/unit/protocol.tcl): a first byte,
        # then the word "payload" over and over without a line end. An inline line, a `*`
        # count line and a `$`-led inline line all stop at the 64 KiB line limit with an
        # error and a close, while the sender is still sending.
        cases = [
            (b"\x00", b"-ERR Protocol error: too big inline request\r\n"),
            (b"*\x00", b"-ERR Protocol error: too big mbulk count string\r\n"),
            (b"$\x00", b"-ERR Protocol error: too big inline request\r\n"),
        ]
        for first, expected in cases:
            with self.subTest(first=first):
                conn = self.raw()
                conn.send(first)
                sent = 0
                try:
                    while sent < 4 * 1024 * 1024:  # far past the limit: the close must come
                        conn.send(b"payload" * 1024)
                        sent += 7 * 1024
                except OSError:
                    pass  # reset by the server's close: expected
                self.assertEqual(conn.read_until_closed(1.0), expected)
                self.assertLess(sent, 4 * 1024 * 1024, "the server never closed")
        self.assertServerAlive()

    def test_many_bad_connections_leave_server_serving(self):
        for _ in range(3):
            for sent, expected in FATAL_INPUTS:
                conn = self.raw()
                conn.send(sent)
                self.assertEqual(conn.read_until_closed(1.0), expected)
        r = self.client()
        self.assertTrue(r.ping())
        self.assertEqual(r.execute_command("ECHO", "still here"), "still here")


if __name__ == "__main__":
    unittest.main()
