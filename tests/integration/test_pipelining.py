"""Pipelined requests are answered in order, whatever they are."""

import unittest

from harness import ConveyorTestCase, encode_command


class PipeliningTest(ConveyorTestCase):

    def test_redis_py_pipeline_of_1000_mixed_commands_answered_in_order(self):
        r = self.client()
        pipe = r.pipeline(transaction=False)
        expected = []
        list_len = 0
        queue_len = 0
        for i in range(1000):
            kind = i % 8
            if kind == 0:
                pipe.execute_command("ECHO", f"echo-{i}")
                expected.append(f"echo-{i}")
            elif kind == 1:
                pipe.execute_command("LPUSH", "pipe_list", f"item-{i}")
                list_len += 1
                expected.append(list_len)
            elif kind == 2:
                pipe.execute_command("LLEN", "pipe_list")
                expected.append(list_len)
            elif kind == 3:
                pipe.execute_command("ENQUEUE", "pipe_tasks", f"task-{i}", "ID", f"id-{i}")
                queue_len += 1
                expected.append(f"id-{i}")
            elif kind == 4:
                pipe.execute_command("QLEN", "pipe_tasks")
                expected.append(queue_len)
            elif kind == 5:
                pipe.execute_command("TASK", f"id-{i - 2}")
                expected.append(("task", f"id-{i - 2}"))
            elif kind == 6:
                pipe.execute_command("RPOP", "pipe_list")
                list_len -= 1
                expected.append(f"item-{i - 5}")
            else:
                pipe.execute_command("NOSUCHCMD", f"x{i}")
                expected.append("error")
        replies = pipe.execute(raise_on_error=False)
        self.assertEqual(len(replies), 1000)
        for i, (got, want) in enumerate(zip(replies, expected)):
            if want == "error":
                self.assertIsInstance(got, Exception, f"reply {i}")
                self.assertIn("unknown command", str(got), f"reply {i}")
            elif isinstance(want, tuple):
                fields = dict(zip(got[::2], got[1::2]))
                self.assertEqual(fields.get("id"), want[1], f"reply {i}: {got!r}")
            else:
                self.assertEqual(got, want, f"reply {i}")

    def test_raw_burst_of_inline_and_multibulk_pings_in_one_write(self):
        conn = self.raw()
        burst = b"".join(b"PING\r\n" if i % 2 else encode_command("ECHO", str(i))
                         for i in range(200))
        conn.send(burst)
        for i in range(200):
            reply = conn.read_reply()
            self.assertEqual(reply, "PONG" if i % 2 else str(i).encode(), f"reply {i}")

    def test_reply_to_a_blocking_lease_comes_before_the_next_pipelined_reply(self):
        conn = self.raw()
        conn.send(encode_command("LEASE", "BLOCK", "200", "FROM", "empty_q")
                  + encode_command("PING"))
        self.assertEqual(conn.read_reply(), [])
        self.assertEqual(conn.read_reply(), "PONG")

    def test_blpop_timeout_in_pipeline_keeps_order(self):
        conn = self.raw()
        conn.send(encode_command("BLPOP", "nothing_here", "1") + encode_command("ECHO", "after"))
        self.assertIsNone(conn.read_reply())
        self.assertEqual(conn.read_reply(), b"after")


if __name__ == "__main__":
    unittest.main()
