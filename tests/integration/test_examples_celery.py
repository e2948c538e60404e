"""The Celery recipe of examples/celery/ (docs/celery.md), run as its README says, so that it
stays true: `conveyor server` with an explicit --amqp-port, `celery -A tasks worker -P solo`
started in examples/celery/ with CONVEYOR_BROKER_URL naming that port, and
`python3 producer.py <x> <y>`, which sends tasks.add and waits for its result over rpc://.
Every process runs in its own process group and is stopped at cleanup, pass or fail; the
harness's watchdog kills the server when the case overruns."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from harness import HOST, REPO_ROOT, ConveyorTestCase, stop_process_group, wait_until

try:
    import celery
except ImportError:  # CI installs python3-celery (scripts/install-deps.sh)
    celery = None

EXAMPLE_DIR = os.path.join(REPO_ROOT, "examples", "celery")


@unittest.skipIf(celery is None, "python3-celery is not installed")
class CeleryExampleTest(ConveyorTestCase):
    start_server = False
    case_timeout = 60.0

    def setUp(self):
        super().setUp()
        self.server = self.start_conveyor(amqp=True)
        self.broker_url = f"amqp://guest:guest@{HOST}:{self.server.amqp_port}//"
        self.tmp = tempfile.mkdtemp(prefix="conveyor-celery-example-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.worker_log = os.path.join(self.tmp, "worker.log")
        self.env = dict(os.environ, CONVEYOR_BROKER_URL=self.broker_url,
                        PYTHONPATH=EXAMPLE_DIR, PYTHONDONTWRITEBYTECODE="1")
        self.worker = None

    def log(self):
        try:
            with open(self.worker_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start_worker(self):
        with open(self.worker_log, "ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-P", "solo",
                 "-l", "info", "-n", "example@%h"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=EXAMPLE_DIR, env=self.env, start_new_session=True)
        self.addCleanup(self.stop_worker)
        wait_until(lambda: " ready." in self.log() or self.worker.poll() is not None, 30,
                   0.05, "the celery worker to be ready")
        self.assertIsNone(self.worker.poll(), f"worker exited:\n{self.log()}")

    def stop_worker(self):
        """Warm shutdown (SIGTERM), then SIGKILL to the group."""
        if self.worker is not None:
            stop_process_group(self.worker)

    def produce(self, *args):
        """`python3 producer.py <args>` in examples/celery/, in its own process group,
        killed whole if it outlives its timeout. Returns (exit code, stdout, stderr)."""
        proc = subprocess.Popen([sys.executable, "producer.py", *[str(a) for a in args]],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=EXAMPLE_DIR, env=self.env,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            self.fail(f"producer.py did not finish in 40 s:\n{out}\n{err}\n"
                      f"worker log:\n{self.log()[-5000:]}")
        return proc.returncode, out, err

    def test_recipe_sends_a_task_and_gets_its_result_over_rpc(self):
        self.start_worker()
        self.assertIn(f"Connected to amqp://guest:**@{HOST}:{self.server.amqp_port}//",
                      self.log())
        for (x, y), expected in (((2, 3), "5"), ((40, 2), "42")):
            code, out, err = self.produce(x, y)
            self.assertEqual(code, 0, f"{out}\n{err}\nworker log:\n{self.log()[-5000:]}")
            self.assertEqual(out.strip(), expected)
        wait_until(lambda: self.log().count("Task tasks.add[") >= 2, 10, 0.05,
                   "the worker to log both tasks")
        self.assertIn("succeeded in", self.log())
        self.assertIn(": 42", self.log())
        # acks_late: both deliveries were acked after the task ran, so nothing is left.
        resp = self.server.client()
        self.addCleanup(resp.close)
        self.assertEqual(resp.execute_command("QLEN", "celery"), 0)


if __name__ == "__main__":
    unittest.main()
