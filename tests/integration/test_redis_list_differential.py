"""Differential test of the Redis list commands: the same command sequences are sent to a real
redis-server (started here on a free port with a temporary directory, no persistence) and to
conveyor, and every reply must be byte for byte the same, in RESP2 and in RESP3.

Covered: LPUSH, RPUSH, LPOP, RPOP (with and without a count, counts 0, huge, negative and not
a number), LLEN, DEL, BLPOP/BRPOP on filled keys and short timeouts on empty ones, and wrong
arities. Left out on purpose, where conveyor answers differently by design: an empty key name
(a queue needs a name) and BLPOP timeouts near the double range (Redis 7.0 calls 1e20
"negative")."""

import random
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import HOST, ConveyorTestCase, encode_command, free_port


def start_redis(test):
    """A private redis-server on a free port; stopped and its directory removed on cleanup."""
    if shutil.which("redis-server") is None:
        test.skipTest("redis-server is not installed")
    workdir = tempfile.mkdtemp(prefix="conveyor-redis-")
    test.addCleanup(shutil.rmtree, workdir, True)
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        test.addCleanup(proc.wait, 5)
        test.addCleanup(proc.kill)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection((HOST, port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return port
            except OSError:
                time.sleep(0.02)
    raise AssertionError("redis-server did not start")


class RawReplies:
    """A socket that sends commands and returns each reply's exact bytes."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def _line_end(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i + 2
            self._need(len(self.buf) + 1)

    def _reply_end(self, pos):
        end = self._line_end(pos)
        self._need(pos + 1)
        kind, header = self.buf[pos:pos + 1], self.buf[pos + 1:end - 2]
        if kind in b"$=!":
            n = int(header)
            if n < 0:
                return end
            self._need(end + n + 2)
            return end + n + 2
        if kind in b"*~>%|":
            n = int(header)
            items = max(n, 0) * (2 if kind in b"%|" else 1)
            for _ in range(items):
                end = self._reply_end(end)
            return self._reply_end(end) if kind == b"|" else end
        return end

    def command(self, *args):
        self.sock.sendall(encode_command(*args))
        end = self._reply_end(0)
        reply, self.buf = self.buf[:end], self.buf[end:]
        return reply


# Hand-written cases: each line is one command; `None` separates independent scripts.
SCRIPT = [
    ("RPUSH", "k", "a", "b", "c"),
    ("LPOP", "k", "0"),
    ("RPOP", "k", "0"),
    ("LPOP", "missing", "0"),
    ("RPOP", "missing", "0"),
    ("LLEN", "k"),
    ("LPOP", "k", "1"),
    ("RPOP", "k", "1"),
    ("LPOP", "k", "5"),
    ("LPOP", "k", "1"),
    ("LPOP", "k"),
    ("RPOP", "k"),
    ("LPOP", "k", "0"),
    ("LPUSH", "k", "x", "y", "z"),
    ("LPOP", "k"),
    ("RPOP", "k"),
    ("LPOP", "k", "-1"),
    ("LPOP", "k", "abc"),
    ("LPOP", "k", "9223372036854775807"),
    ("LPUSH", "k", "again"),
    ("RPOP", "k", "9223372036854775808"),
    ("RPOP", "missing", "-1"),
    ("LPOP", "k", "1", "2"),
    ("LPOP",),
    ("RPOP",),
    ("LPUSH", "k"),
    ("RPUSH",),
    ("LLEN",),
    ("LLEN", "k", "k"),
    ("LLEN", "missing"),
    ("DEL", "k", "missing"),
    ("DEL", "k"),
    ("LLEN", "k"),
    ("RPUSH", "b1", "one", "two"),
    ("LPUSH", "b2", "three"),
    ("BLPOP", "empty", "b1", "b2", "0.05"),
    ("BRPOP", "empty", "b1", "b2", "0.05"),
    ("BRPOP", "empty", "b1", "b2", "0.05"),
    ("BLPOP", "empty", "0.05"),
    ("BRPOP", "empty", "0.01"),
    ("BLPOP", "b1", "-1"),
    ("BLPOP", "b1", "abc"),
    ("BLPOP", "b1"),
    ("BRPOP",),
    ("RPUSH", "bin", b"\x00\xff\r\n", b""),
    ("LPOP", "bin", "2"),
]


def random_script(rng, steps):
    keys = ["q1", "q2", "q3"]
    out = []
    for i in range(steps):
        op = rng.choice(["LPUSH", "RPUSH", "LPOP", "RPOP", "LLEN", "DEL", "BLPOP", "BRPOP"])
        key = rng.choice(keys)
        if op in ("LPUSH", "RPUSH"):
            out.append((op, key, *[f"v{i}-{j}" for j in range(rng.randint(1, 4))]))
        elif op in ("LPOP", "RPOP"):
            count = rng.choice([None, None, "0", "1", "2", "7"])
            out.append((op, key) if count is None else (op, key, count))
        elif op == "DEL":
            out.append((op, *rng.sample(keys, rng.randint(1, 2))))
        elif op == "LLEN":
            out.append((op, key))
        else:
            out.append((op, *rng.sample(keys, rng.randint(1, 3)), "0.01"))
    return out


class RedisListDifferentialTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def setUp(self):
        super().setUp()
        self.redis_port = start_redis(self)

    def compare(self, script, resp3=False):
        conns = [RawReplies(self.redis_port), RawReplies(self.server.port)]
        for c in conns:
            self.addCleanup(c.close)
            if resp3:
                self.assertTrue(c.command("HELLO", "3").startswith(b"%"))
        for step, cmd in enumerate(script):
            want, got = (c.command(*cmd) for c in conns)
            self.assertEqual(got, want, f"step {step}: {cmd!r}: redis {want!r}, "
                                        f"conveyor {got!r}")

    def test_pop_with_count_zero_on_a_filled_list_is_an_empty_array(self):
        r = self.client()
        r.rpush("k", "a")
        self.assertEqual(r.lpop("k", 0), [])
        self.assertEqual(r.rpop("k", 0), [])
        self.assertIsNone(r.lpop("missing", 0))
        self.assertEqual(r.llen("k"), 1)

    def test_script_resp2(self):
        self.compare(SCRIPT)

    def test_script_resp3(self):
        self.compare(SCRIPT, resp3=True)

    def test_random_sequences(self):
        seed = random.randrange(1 << 30)
        print(f"[list differential] seed {seed}")
        rng = random.Random(seed)
        self.compare(random_script(rng, 400), resp3=rng.random() < 0.5)


if __name__ == "__main__":
    unittest.main()
