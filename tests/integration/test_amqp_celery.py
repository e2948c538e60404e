"""Celery 5.2 (Debian python3-celery, py-amqp 5.1 underneath) over amqp:// against Conveyor's
AMQP port: a real worker subprocess (`celery -A <module> worker -P solo -c 1 -E`, so mingle,
gossip and events are on) with result_backend 'rpc://'; a task's result, a task that retries
once with self.retry(countdown=1), and `celery inspect ping` (pidbox broadcast and reply).
Validated against RabbitMQ with CONVEYOR_AMQP_TARGET=rabbitmq (amqp_target.py)."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from amqp_target import AmqpTestCase
from harness import stop_process_group, wait_until

try:
    import celery
except ImportError:  # CI installs python3-celery (scripts/install-deps.sh)
    celery = None

TASKS_MODULE = "conveyor_it_tasks"
TASKS_SOURCE = textwrap.dedent('''
    import os

    from celery import Celery

    app = Celery("conveyor_it_tasks", broker=os.environ["CONVEYOR_IT_BROKER"],
                 backend="rpc://")
    app.conf.update(broker_connection_max_retries=3, worker_hijack_root_logger=False,
                    task_serializer="json", result_serializer="json",
                    accept_content=["json"])


    @app.task
    def add(x, y):
        return x + y


    @app.task(bind=True, max_retries=3)
    def flaky(self, marker):
        """Fails (retries in 1 s) the first time, succeeds the second."""
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            raise self.retry(countdown=1)
        return {"retries": self.request.retries, "value": "second time lucky"}
''')


@unittest.skipIf(celery is None, "python3-celery is not installed")
class CeleryTest(AmqpTestCase):
    case_timeout = 50.0

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="conveyor-celery-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        with open(os.path.join(self.dir, f"{TASKS_MODULE}.py"), "w") as f:
            f.write(TASKS_SOURCE)
        self.broker_url = f"amqp://guest:guest@{self.host}:{self.port}//"
        self.env = dict(os.environ, PYTHONPATH=self.dir, CONVEYOR_IT_BROKER=self.broker_url,
                        PYTHONDONTWRITEBYTECODE="1")
        self.worker_log = os.path.join(self.log_dir, "worker.log")
        self.worker = None

    def celery_cmd(self, *args):
        return [sys.executable, "-m", "celery", "-A", TASKS_MODULE, *args]

    def start_worker(self):
        with open(self.worker_log, "ab") as log:
            self.worker = subprocess.Popen(
                self.celery_cmd("worker", "-l", "info", "-c", "1", "-P", "solo", "-E",
                                "-n", "conveyor-it@%h"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, env=self.env, start_new_session=True)
        self.addCleanup(self.stop_worker)
        wait_until(lambda: " ready." in self.log() or self.worker.poll() is not None, 30,
                   0.05, "the celery worker to be ready")
        self.assertIsNone(self.worker.poll(), f"worker exited:\n{self.log()}")

    def stop_worker(self):
        """Warm shutdown (SIGTERM), then SIGKILL to the group."""
        if self.worker is not None:
            stop_process_group(self.worker)

    def log(self):
        try:
            with open(self.worker_log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def run(self, result=None):
        """The worker's log is printed when the case fails (it outlives the case's
        cleanups, which remove the module directory)."""
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        self.log_dir = tempfile.mkdtemp(prefix="conveyor-celery-log-")
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                sys.stderr.write(f"\n----- celery worker log ({self.id()}) -----\n"
                                 f"{self.log()[-15000:]}\n----- end of worker log -----\n")
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def client_app(self):
        app = celery.Celery("conveyor-it-client", broker=self.broker_url, backend="rpc://")
        app.conf.update(broker_connection_max_retries=3, accept_content=["json"])
        self.addCleanup(app.close)
        return app

    # ---- tests -------------------------------------------------------------------------

    def test_task_result_comes_back(self):
        self.start_worker()
        app = self.client_app()
        r = app.send_task(f"{TASKS_MODULE}.add", args=(2, 3))
        self.assertEqual(r.get(timeout=20), 5)
        self.assertEqual(r.state, "SUCCESS")
        results = [app.send_task(f"{TASKS_MODULE}.add", args=(i, i)) for i in range(5)]
        self.assertEqual([x.get(timeout=20) for x in results], [0, 2, 4, 6, 8])
        self.assertIn(f"Task {TASKS_MODULE}.add[{r.id}] succeeded", self.log())

    def test_task_retried_once_then_succeeds(self):
        self.start_worker()
        app = self.client_app()
        marker = os.path.join(self.dir, "flaky-ran-once")
        start = time.monotonic()
        r = app.send_task(f"{TASKS_MODULE}.flaky", args=(marker,))
        self.assertEqual(r.get(timeout=25), {"retries": 1, "value": "second time lucky"})
        self.assertGreaterEqual(time.monotonic() - start, 0.9)  # countdown=1
        self.assertIn(f"Task {TASKS_MODULE}.flaky[{r.id}] retry: Retry in 1s", self.log())

    def test_inspect_ping(self):
        self.start_worker()
        proc = subprocess.run(self.celery_cmd("inspect", "ping", "-t", "5"), cwd=self.dir,
                              env=self.env, capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("conveyor-it@", proc.stdout)
        self.assertIn("pong", proc.stdout)
        self.assertRegex(proc.stdout, r"1 node online")
        # The app's own default -t (1 s) too.
        proc = subprocess.run(self.celery_cmd("inspect", "ping"), cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)


if __name__ == "__main__":
    unittest.main()
