"""Connection commands over redis-py, redis-cli and raw sockets: PING, ECHO, QUIT, SELECT,
CLIENT, COMMAND, TIME, inline commands, unknown commands and wrong arity."""

import time
import unittest

import redis

from harness import ConveyorTestCase, RespError


class ConnectionCommandsTest(ConveyorTestCase):

    def test_ping_without_and_with_message(self):
        self.assertTrue(self.client().ping())
        conn = self.raw()
        self.assertEqual(conn.command("PING"), "PONG")
        self.assertEqual(conn.command("PING", "hello world"), b"hello world")

    def test_redis_cli_ping_prints_pong(self):
        out = self.server.redis_cli("PING")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "PONG")

    def test_inline_ping_over_raw_socket_gets_simple_pong(self):
        conn = self.raw()
        conn.send(b"PING\r\n")
        self.assertEqual(conn.read_exactly(7), b"+PONG\r\n")

    def test_inline_command_with_arguments(self):
        conn = self.raw()
        conn.send(b"ECHO hello\r\n")
        self.assertEqual(conn.read_exactly(11), b"$5\r\nhello\r\n")

    def test_echo_returns_binary_safe_argument(self):
        r = self.client(decode=False)
        payload = b"a\r\nb\x00c\xff" * 100
        self.assertEqual(r.echo(payload), payload)

    def test_quit_replies_ok_then_closes(self):
        conn = self.raw()
        conn.send(b"*1\r\n$4\r\nQUIT\r\n")
        self.assertEqual(conn.read_until_closed(2.0), b"+OK\r\n")
        self.assertServerAlive()

    def test_select_zero_is_accepted(self):
        conn = self.raw()
        self.assertEqual(conn.command("SELECT", "0"), "OK")

    def test_client_setname_getname_and_id(self):
        r = self.client()
        self.assertIsNone(r.execute_command("CLIENT", "GETNAME"))
        self.assertTrue(r.execute_command("CLIENT", "SETNAME", "worker-7"))
        self.assertEqual(r.execute_command("CLIENT", "GETNAME"), "worker-7")
        first = r.execute_command("CLIENT", "ID")
        other = self.client()
        second = other.execute_command("CLIENT", "ID")
        self.assertIsInstance(first, int)
        self.assertIsInstance(second, int)
        self.assertNotEqual(first, second, "two connections share a client id")

    def test_command_count_matches_command_listing(self):
        conn = self.raw()
        count = conn.command("COMMAND", "COUNT")
        self.assertIsInstance(count, int)
        self.assertGreater(count, 0)
        listing = conn.command("COMMAND")
        self.assertIsInstance(listing, list)
        self.assertEqual(len(listing), count)

    def test_command_docs_returns_a_collection(self):
        conn = self.raw()
        docs = conn.command("COMMAND", "DOCS")
        self.assertIsInstance(docs, (list, dict), f"COMMAND DOCS replied {docs!r}")
        # redis-cli 7 asks for COMMAND DOCS on interactive start-up; it must not be an error.
        docs_for_ping = conn.command("COMMAND", "DOCS", "PING")
        self.assertIsInstance(docs_for_ping, (list, dict))

    def test_time_is_current_unix_time(self):
        r = self.client()
        seconds, micros = r.time()
        now = time.time()
        self.assertLess(abs(seconds + micros / 1e6 - now), 5.0)
        self.assertTrue(0 <= micros < 1_000_000)

    def test_unknown_command_error_names_the_command(self):
        conn = self.raw()
        reply = conn.command("NOSUCHCMD", "arg1")
        self.assertTrue(reply == "ERR unknown command 'NOSUCHCMD'"
                        or reply.startswith("ERR unknown command 'NOSUCHCMD', with args "
                                            "beginning with: "),
                        f"got {reply!r}")
        # The connection stays usable.
        self.assertEqual(conn.command("PING"), "PONG")

    def test_wrong_arity_error_names_the_command(self):
        conn = self.raw()
        reply = conn.command("ECHO")
        # Redis names the command in lower case; the name as typed is accepted too.
        self.assertIn(reply, ("ERR wrong number of arguments for 'echo' command",
                              "ERR wrong number of arguments for 'ECHO' command"))
        self.assertEqual(conn.command("PING"), "PONG")

    def test_wrong_arity_on_task_commands(self):
        conn = self.raw()
        for cmd in (["ENQUEUE", "q"], ["ACK"], ["TASK"], ["QLEN"], ["CANCEL"]):
            with self.subTest(cmd=cmd):
                reply = conn.command(*cmd)
                self.assertIsInstance(reply, RespError, f"{cmd} replied {reply!r}")
                self.assertEqual(reply.lower(), "err wrong number of arguments for '%s' "
                                 "command" % cmd[0].lower(), f"{cmd} replied {reply!r}")

    def test_redis_py_raises_on_unknown_command(self):
        r = self.client()
        with self.assertRaises(redis.ResponseError):
            r.execute_command("NOSUCHCMD")


if __name__ == "__main__":
    unittest.main()
