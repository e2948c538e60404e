"""`conveyor worker` with process handlers, end to end against the real broker: --exec
(success, failure retried then dead-lettered, failure then success on the retry, soft then
hard time limit with the process actually gone), --pipe with examples/handler.py (success,
failure, a crash then success on the retry), --handlers routing by task NAME."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import redis

from harness import HOST, REPO_ROOT, ConveyorTestCase, conveyor_bin, enqueue, run_conveyor, \
    task_info, wait_until


class WorkerHandlersTest(ConveyorTestCase):
    case_timeout = 60.0

    def start_worker(self, *handler_args, queue="q"):
        """`conveyor worker` in its own process group, stopped (warm, then killed) at the end
        of the case; its log goes to a file printed when the case fails."""
        log_path = os.path.join(self.server.workdir, "worker.log")
        log = open(log_path, "ab")
        self.addCleanup(log.close)
        cmd = [conveyor_bin(), "worker", "--connect", f"{HOST}:{self.server.port}",
               "--queue", queue, "--concurrency", "2", "--shutdown-timeout", "2",
               "--status-interval", "0", *handler_args]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                start_new_session=True)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

        self.worker_log_path = log_path
        self.addCleanup(stop)
        return proc

    def worker_log(self):
        with open(self.worker_log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-5000:]

    def wait_state(self, r, task_id, state, timeout=15.0):
        try:
            return wait_until(lambda: (task_info(r, task_id) or {}).get("state") == state
                              and task_info(r, task_id), timeout,
                              message=f"task {task_id} to be {state}")
        except AssertionError as e:
            raise AssertionError(f"{e}; task {task_info(r, task_id)}; worker log:\n"
                                 f"{self.worker_log()}") from None

    def result(self, r, task_id, timeout_ms=15000):
        value = r.execute_command("RESULT", task_id, "WAIT", timeout_ms)
        self.assertIsNotNone(value, f"no result for {task_id}; worker log:\n{self.worker_log()}")
        return value

    def test_exec_success_stores_stdout_as_the_result(self):
        r = self.client()
        self.start_worker("--exec", 'printf "%s:" "$CONVEYOR_TASK_NAME"; tr a-z A-Z')
        task_id = enqueue(r, "q", "hello", "NAME", "shout")
        self.assertEqual(self.result(r, task_id), "shout:HELLO")
        self.assertEqual(int(self.wait_state(r, task_id, "succeeded")["attempt"]), 1)

    def test_exec_failure_is_retried_then_dead_lettered(self):
        r = self.client()
        self.start_worker("--exec", 'echo "boom in attempt $CONVEYOR_ATTEMPT" >&2; exit 3')
        task_id = enqueue(r, "q", "p", "RETRIES", 1, "BACKOFF", 20, 50)
        info = self.wait_state(r, task_id, "dead")
        self.assertEqual(int(info["attempt"]), 2)
        self.assertEqual(info["error"], "boom in attempt 2")
        with self.assertRaisesRegex(redis.ResponseError, "^FAILED"):
            r.execute_command("RESULT", task_id)

    def test_pipe_with_the_example_handler(self):
        r = self.client()
        self.start_worker("--pipe", "python3 examples/handler.py")
        ok_id = enqueue(r, "q", "héllo pipe", "NAME", "echo")
        fail_id = enqueue(r, "q", "x", "NAME", "fail", "RETRIES", 5)
        self.assertEqual(self.result(r, ok_id), "héllo pipe")
        info = self.wait_state(r, fail_id, "dead")
        self.assertEqual(int(info["attempt"]), 1, "retry:false is dead-lettered at once")
        self.assertEqual(info["error"], "failed on purpose")

    def test_handlers_file_routes_by_task_name(self):
        r = self.client()
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("# test routes\n"
                    "upper exec -- tr a-z A-Z\n"
                    "py    pipe concurrency=1 -- python3 examples/handler.py\n"
                    "*     builtin -- echo\n")
        self.addCleanup(os.unlink, f.name)
        self.start_worker("--handlers", f.name)
        upper = enqueue(r, "q", "abc", "NAME", "upper")
        py = enqueue(r, "q", "from python", "NAME", "py")
        other = enqueue(r, "q", "as is", "NAME", "whatever")
        self.assertEqual(self.result(r, upper), "ABC")
        self.assertEqual(self.result(r, py), "from python")
        self.assertEqual(self.result(r, other), "as is")

    def test_exec_failure_then_success_on_the_retry(self):
        r = self.client()
        self.start_worker("--exec", 'if [ "$CONVEYOR_ATTEMPT" = 1 ]; then echo flaky >&2; exit 1; '
                                    'fi; echo "ok on attempt $CONVEYOR_ATTEMPT"')
        task_id = enqueue(r, "q", "p", "RETRIES", 3, "BACKOFF", 20, 50)
        self.assertEqual(self.result(r, task_id), "ok on attempt 2\n")
        info = self.wait_state(r, task_id, "succeeded")
        self.assertEqual(int(info["attempt"]), 2)

    def test_exec_soft_then_hard_time_limit_leaves_no_process(self):
        """A command that ignores SIGTERM (the soft limit) is SIGKILLed at the hard limit, with
        its whole process group: the task fails with `time limit exceeded` and no process of
        it is left."""
        r = self.client()
        pid_dir = tempfile.mkdtemp(prefix="conveyor-pids-")
        self.addCleanup(shutil.rmtree, pid_dir, True)
        script = (f'trap "echo got TERM >> {pid_dir}/term" TERM; '
                  f'sleep 30 & echo $! > {pid_dir}/child; echo $$ > {pid_dir}/shell; '
                  'while true; do wait; done')
        self.start_worker("--soft-grace-ms", "500", "--exec", script)
        task_id = enqueue(r, "q", "p", "TIMEOUT", 1500, "RETRIES", 0)
        info = self.wait_state(r, task_id, "dead", timeout=20.0)
        self.assertEqual(info["error"], "time limit exceeded")
        with open(os.path.join(pid_dir, "term")) as f:
            self.assertIn("got TERM", f.read(), "the soft limit sends SIGTERM first")
        for name in ("shell", "child"):
            with open(os.path.join(pid_dir, name)) as f:
                pid = int(f.read())

            def gone(pid=pid):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
                # A zombie whose parent is gone is not running either.
                try:
                    with open(f"/proc/{pid}/stat") as st:
                        return st.read().split(")")[-1].split()[0] == "Z"
                except FileNotFoundError:
                    return True
                return False
            wait_until(gone, 5.0, message=f"the task's {name} process {pid} to be gone")

    def test_pipe_handler_crash_fails_the_task_and_the_retry_succeeds(self):
        r = self.client()
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write("import json, os, sys\n"
                    "for line in sys.stdin:\n"
                    "    m = json.loads(line)\n"
                    "    if 'cancel' in m: continue\n"
                    "    if m['attempt'] == 1: os._exit(7)\n"
                    "    print(json.dumps({'id': m['id'], 'ok': True, 'result': 'second'}),"
                    " flush=True)\n")
        self.addCleanup(os.unlink, f.name)
        self.start_worker("--pipe", f"python3 {f.name}")
        task_id = enqueue(r, "q", "p", "RETRIES", 2, "BACKOFF", 20, 50)
        self.assertEqual(self.result(r, task_id), "second")
        self.assertEqual(int(self.wait_state(r, task_id, "succeeded")["attempt"]), 2)

    def test_a_bad_handlers_file_is_refused_with_file_and_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("# ok\nupper shell -- tr a-z A-Z\n")
        self.addCleanup(os.unlink, f.name)
        code, out = run_conveyor("worker", "--connect", f"{HOST}:{self.server.port}",
                                 "--queue", "q", "--handlers", f.name)
        self.assertNotEqual(code, 0)
        self.assertIn(f"{f.name}:2: unknown handler kind 'shell'", out)


if __name__ == "__main__":
    unittest.main()
