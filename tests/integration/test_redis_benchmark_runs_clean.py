"""redis-benchmark runs against the server with no errors, with and without pipelining.
This asserts behaviour only; timings belong in bench/."""

import re
import subprocess
import unittest

from harness import HOST, ConveyorTestCase

EXPECTED_TESTS = ("PING_INLINE", "PING_MBULK", "LPUSH", "RPOP", "LPOP")


class RedisBenchmarkTest(ConveyorTestCase):
    case_timeout = 90.0

    def run_benchmark(self, *extra):
        cmd = ["redis-benchmark", "-h", HOST, "-p", str(self.server.port),
               "-t", "ping,lpush,rpop,lpop", "-n", "2000", "-c", "10", "-q", *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, f"{' '.join(cmd)} exited {out.returncode}:\n{text}")
        # -q rewrites its progress line with \r; look at every fragment.
        fragments = [f for line in text.splitlines() for f in line.split("\r")]
        bad = [f for f in fragments if re.search(r"ERR|error", f, re.IGNORECASE)]
        self.assertEqual(bad, [], f"errors in redis-benchmark output:\n{text}")
        for name in EXPECTED_TESTS:
            self.assertTrue(any(f.startswith(name + ":") and "requests per second" in f
                                for f in fragments),
                            f"no result line for {name}:\n{text}")
        self.assertTrue(self.server.is_running(), "server died under redis-benchmark")
        return text

    def test_redis_benchmark_without_pipelining(self):
        self.run_benchmark()

    def test_redis_benchmark_with_pipelining(self):
        self.run_benchmark("-P", "16")
        # All LPUSHed items are accounted for: 2000 pushed, then 2000 RPOP + 2000 LPOP tried.
        r = self.client()
        self.assertEqual(r.llen("mylist"), 0)


if __name__ == "__main__":
    unittest.main()
