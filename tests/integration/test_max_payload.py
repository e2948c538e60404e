"""--max-payload bounds what a producer can store; the server keeps serving."""

import unittest

import redis

from harness import ConveyorTestCase, encode_command, lease_one, RespError


class MaxPayloadTest(ConveyorTestCase):
    server_args = ("--max-payload", "1024")

    def test_payload_at_the_limit_is_accepted(self):
        r = self.client()
        r.execute_command("ENQUEUE", "q", "x" * 1024)
        self.assertEqual(len(lease_one(r, "q")["payload"]), 1024)

    def test_payload_over_the_limit_is_refused_and_not_stored(self):
        conn = self.raw()
        conn.send(encode_command("ENQUEUE", "q", "x" * 1025))
        try:
            reply = conn.read_reply()
        except ConnectionError:
            reply = None  # refused by closing the connection: also acceptable
        if reply is not None:
            self.assertIsInstance(reply, RespError, f"ENQUEUE of 1025 bytes replied {reply!r}")
        self.assertEqual(self.client().execute_command("QLEN", "q"), 0)
        self.assertServerAlive()

    def test_lpush_over_the_limit_is_refused_and_not_stored(self):
        r = self.client()
        try:
            r.lpush("q", "y" * 4096)
            self.fail("LPUSH of 4096 bytes was accepted with --max-payload 1024")
        except (redis.ResponseError, redis.ConnectionError):
            pass
        self.assertEqual(self.client().llen("q"), 0)
        self.assertServerAlive()


if __name__ == "__main__":
    unittest.main()
