"""RESP3 after HELLO 3: raw bytes, redis-cli -3, and tasks delivered as maps."""

import unittest

from harness import ConveyorTestCase, encode_command


class Resp3HelloTest(ConveyorTestCase):

    def test_hello_3_replies_with_a_map_and_switches_protocol(self):
        conn = self.raw()
        conn.send(encode_command("HELLO", "3"))
        self.assertEqual(conn.peek(1), b"%", "HELLO 3 must answer with a RESP3 map")
        hello = conn.read_reply()
        self.assertEqual(hello.get("proto"), 3, hello)
        self.assertIn("server", hello)
        self.assertIn("version", hello)
        # Still a connection that answers simple commands.
        conn.send(b"PING\r\n")
        self.assertEqual(conn.read_exactly(7), b"+PONG\r\n")

    def test_hello_2_replies_with_a_flat_array(self):
        conn = self.raw()
        conn.send(encode_command("HELLO", "2"))
        self.assertEqual(conn.peek(1), b"*", "HELLO 2 must answer with a flat array")
        reply = conn.read_reply()
        self.assertEqual(len(reply) % 2, 0, reply)
        fields = {reply[i].decode() if isinstance(reply[i], bytes) else reply[i]: reply[i + 1]
                  for i in range(0, len(reply), 2)}
        self.assertEqual(fields.get("proto"), 2, fields)

    def test_nil_is_resp3_null_after_hello_3(self):
        conn = self.raw()
        conn.command("HELLO", "3")
        conn.send(encode_command("CLIENT", "GETNAME"))
        self.assertEqual(conn.read_exactly(3), b"_\r\n")

    def test_leased_task_is_a_map_under_resp3(self):
        conn = self.raw()
        conn.command("HELLO", "3")
        task_id = conn.command("ENQUEUE", "r3q", "payload-3")
        reply = conn.command("LEASE", "FROM", "r3q")
        self.assertIsInstance(reply, list)
        self.assertEqual(len(reply), 1)
        task = reply[0]
        self.assertIsInstance(task, dict, f"task under RESP3 should be a map: {task!r}")
        self.assertEqual(task["id"], task_id)
        self.assertEqual(task["payload"], b"payload-3")
        self.assertEqual(int(task["attempt"]), 1)

    def test_redis_cli_minus_3_speaks_resp3(self):
        out = self.server.redis_cli("-3", "--no-raw", "HELLO", "3")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('"proto" => (integer) 3', out.stdout)
        out = self.server.redis_cli("-3", "PING")
        self.assertEqual(out.stdout.strip(), "PONG")

    def test_redis_cli_minus_3_shows_leased_task_as_map(self):
        self.assertEqual(self.server.redis_cli("ENQUEUE", "cliq", "hello").returncode, 0)
        out = self.server.redis_cli("-3", "--no-raw", "LEASE", "FROM", "cliq")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('"payload" => "hello"', out.stdout)


if __name__ == "__main__":
    unittest.main()
