"""The client subcommands of `conveyor` (enqueue, result, task, queues, cancel, dead,
requeue), run as processes against the real broker: output bytes, stderr messages and exit
statuses (0 done, 1 refused or unreachable, 2 usage), as docs/cli.md documents them."""

import json
import os
import pty
import select
import subprocess
import tempfile
import time
import unittest

from harness import (HOST, ConveyorTestCase, conveyor_bin, enqueue, free_port, lease,
                     lease_one, task_info, wait_for_lease)

CLI_TIMEOUT = 20.0


class CliTestCase(ConveyorTestCase):
    server_args = ("--default-lease-ms", "10000")

    def env(self, url=None):
        env = dict(os.environ)
        env["CONVEYOR_URL"] = url if url is not None else f"{HOST}:{self.server.port}"
        return env

    def cli(self, *args, input=b"", url=None, timeout=CLI_TIMEOUT):
        """Runs `conveyor <args>`; returns the CompletedProcess (stdout/stderr as bytes)."""
        return subprocess.run([conveyor_bin(), *[str(a) for a in args]], input=input,
                              capture_output=True, env=self.env(url), timeout=timeout)

    def popen(self, *args, url=None):
        proc = subprocess.Popen([conveyor_bin(), *[str(a) for a in args]],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env(url))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def assertExit(self, proc, status, stderr_has=None):
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, status,
                         f"exit {proc.returncode}; stdout {proc.stdout!r}; stderr {err!r}")
        if stderr_has is not None:
            self.assertIn(stderr_has, err)

    def enqueue_cli(self, *args, input=b""):
        p = self.cli("enqueue", *args, input=input)
        self.assertExit(p, 0)
        task_id = p.stdout.decode().strip()
        self.assertRegex(task_id, r"^\S+$")
        return task_id

    def make_dead(self, r, queue, error="boom"):
        task_id = enqueue(r, queue, "p")
        t = lease_one(r, queue)
        self.assertEqual(r.execute_command("FAIL", t["lease"], error, "NORETRY"), "dead")
        return task_id


class EnqueueTest(CliTestCase):
    def test_enqueue_prints_id_and_passes_every_option(self):
        r = self.client()
        task_id = self.enqueue_cli("emails", "hello", "--name", "send", "--priority", "7",
                                   "--retries", "2", "--timeout", "5s", "--ttl", "1m",
                                   "--backoff", "100", "2s")
        info = task_info(r, task_id)
        self.assertEqual(info["queue"], "emails")
        self.assertEqual(info["name"], "send")
        self.assertEqual(info["priority"], 7)
        self.assertEqual(info["state"], "queued")
        t = lease_one(r, "emails")
        self.assertEqual((t["id"], t["payload"], int(t["timeout_ms"])), (task_id, "hello", 5000))

    def test_enqueue_with_id_delay_and_at(self):
        r = self.client()
        self.assertEqual(self.enqueue_cli("q", "a", "--id", "order-17"), "order-17")
        self.assertEqual(self.enqueue_cli("q", "b", "--id", "order-17"), "order-17",
                         "a known id enqueues nothing and returns the id")
        delayed = self.enqueue_cli("q", "c", "--delay", "10s")
        self.assertEqual(task_info(r, delayed)["state"], "delayed")
        past = self.enqueue_cli("q", "d", "--at", "1000")
        self.assertEqual(task_info(r, past)["state"], "queued")
        self.assertEqual(r.execute_command("QLEN", "q"), 2)

    def test_payload_dash_reads_binary_stdin(self):
        payload = bytes(range(256)) * 64 + b"\r\n\x00end"
        task_id = self.enqueue_cli("bin", "-", input=payload)
        t = lease_one(self.client(decode=False), "bin")
        self.assertEqual(t["id"].decode(), task_id)
        self.assertEqual(t["payload"], payload)

    def test_payload_after_double_dash_may_start_with_dashes(self):
        self.enqueue_cli("q", "--", "--not-an-option")
        self.assertEqual(lease_one(self.client(), "q")["payload"], "--not-an-option")

    def test_wait_prints_the_result_once_a_worker_acks(self):
        proc = self.popen("enqueue", "jobs", "work", "--wait", "15000")
        r = self.client(decode=False)
        t = wait_for_lease(r, "jobs", timeout=10.0)
        result = b"done\x00\xff\n"
        self.assertEqual(r.execute_command("ACK", t["lease"], result), 1)
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out, result)

    def test_wait_exits_1_with_the_error_when_the_task_dies(self):
        proc = self.popen("enqueue", "jobs", "work", "--wait", "15000", "--retries", "0")
        r = self.client()
        t = wait_for_lease(r, "jobs", timeout=10.0)
        self.assertEqual(r.execute_command("FAIL", t["lease"], "disk on fire"), "dead")
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(out, b"")
        self.assertIn(b"failed: disk on fire", err)

    def test_wait_exits_1_when_the_task_does_not_finish_in_time(self):
        start = time.monotonic()
        p = self.cli("enqueue", "idle", "work", "--wait", "300")
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertExit(p, 1, "did not finish within 300 ms")
        self.assertEqual(p.stdout, b"")
        self.assertEqual(self.client().execute_command("QLEN", "idle"), 1, "the task stays")

    def test_wait_exits_1_when_the_task_is_cancelled(self):
        proc = self.popen("enqueue", "jobs", "work", "--wait", "15000", "--id", "c1")
        r = self.client()
        wait_for_lease(r, "jobs", timeout=10.0)
        self.assertEqual(r.execute_command("CANCEL", "c1"), 1)
        _, err = proc.communicate(timeout=CLI_TIMEOUT)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(b"was cancelled", err)

    def test_server_refusal_exits_1_with_the_reply(self):
        p = self.cli("enqueue", "", "x")
        self.assertExit(p, 1, "queue name must not be empty")

    def test_usage_errors_exit_2(self):
        cases = [
            (("enqueue",), "missing arguments"),
            (("enqueue", "q"), "missing arguments"),
            (("enqueue", "q", "a", "b"), "too many arguments"),
            (("enqueue", "q", "x", "--priority", "10"), "--priority"),
            (("enqueue", "q", "x", "--priority"), "needs a value"),
            (("enqueue", "q", "x", "--delay", "soon"), "--delay"),
            (("enqueue", "q", "x", "--delay", "1s", "--at", "5"), "cannot be used together"),
            (("enqueue", "q", "x", "--backoff", "5"), "needs two values"),
            (("enqueue", "q", "x", "--bogus"), "unknown option '--bogus'"),
            (("enqueue", "q", "--lines", "f", "--wait", "5"), "--wait"),
            (("enqueue", "q", "x", "--print-ids"), "--print-ids needs --lines"),
            (("result",), "missing arguments"),
            (("task", "a", "b"), "too many arguments"),
            (("queues", "extra"), "too many arguments"),
            (("dead", "q", "--count", "0"), "--count"),
            (("cancel", "a", "--json"), "unknown option"),
            (("requeue",), "missing arguments"),
            (("enqueue", "q", "x", "--connect", "redis://h:notaport"), "--connect: bad URL"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = self.cli(*args)
                self.assertExit(p, 2, message)
                self.assertIn(f"conveyor {args[0]}: ".encode(), p.stderr)
                self.assertIn(b"--help", p.stderr)
        self.assertEqual(self.client().execute_command("QUEUES"), [], "nothing was enqueued")

    def test_help_of_every_subcommand(self):
        for command in ("enqueue", "result", "task", "queues", "cancel", "dead", "requeue"):
            with self.subTest(command=command):
                p = self.cli(command, "--help", url="unused:1")
                self.assertExit(p, 0)
                self.assertTrue(p.stdout.startswith(f"Usage: conveyor {command}".encode()))
                self.assertIn(b"--connect <url>", p.stdout)
                self.assertIn(b"--connect-timeout", p.stdout)


class BulkEnqueueTest(CliTestCase):
    def test_lines_file_enqueues_one_task_per_line(self):
        with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
            f.write(b"".join(b"task %d\n" % i for i in range(10000)))
        self.addCleanup(os.unlink, f.name)
        p = self.cli("enqueue", "bulk", "--lines", f.name, "--name", "n", "--priority", "2")
        self.assertExit(p, 0, "enqueued 10000 tasks")
        self.assertEqual(p.stdout, b"")
        self.assertNotIn(b"\r", p.stderr, "no progress bar when stderr is not a terminal")
        r = self.client()
        self.assertEqual(r.execute_command("QLEN", "bulk"), 10000)
        tasks = lease(r, "bulk", count=3)
        self.assertEqual([t["payload"] for t in tasks], ["task 0", "task 1", "task 2"])
        self.assertEqual({(t["name"], int(t["priority"])) for t in tasks}, {("n", 2)})

    def test_lines_from_stdin_with_print_ids_keeps_order_and_bytes(self):
        lines = [b"first", b"", b"\x00\xff binary", b"last without newline"]
        p = self.cli("enqueue", "s", "--lines", "-", "--print-ids", input=b"\n".join(lines))
        self.assertExit(p, 0, "enqueued 4 tasks")
        ids = p.stdout.decode().split()
        self.assertEqual(len(ids), 4)
        tasks = lease(self.client(decode=False), "s", count=10)
        self.assertEqual([t["id"].decode() for t in tasks], ids)
        self.assertEqual([t["payload"] for t in tasks], lines)

    def test_missing_file_exits_1(self):
        p = self.cli("enqueue", "q", "--lines", "/nonexistent/tasks.txt")
        self.assertExit(p, 1, "cannot open '/nonexistent/tasks.txt'")

    def test_line_over_max_payload_stops_with_its_number(self):
        # The broker refuses the over-long line as a protocol error and closes the connection:
        # the lines before it stay enqueued, the one after it is never sent.
        server = self.start_conveyor("--max-payload", "1000")
        lines = b"ok 1\nok 2\n" + b"z" * 2000 + b"\nok 4\n"
        p = subprocess.run([conveyor_bin(), "enqueue", "q", "--lines", "-",
                            "--connect", f"{HOST}:{server.port}"], input=lines,
                           capture_output=True, timeout=CLI_TIMEOUT)
        self.assertExit(p, 1, "enqueued 2 tasks before the failure (line 3: ERR Protocol error")
        self.assertIn(b"closed by the server", p.stderr)
        with server.client() as r:
            self.assertEqual(r.execute_command("QLEN", "q"), 2)


class ProgressBarTest(CliTestCase):
    def run_on_pty(self, args, stdin):
        master, slave = pty.openpty()
        proc = subprocess.Popen([conveyor_bin(), *args], stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=slave, env=self.env())
        os.close(slave)
        out = b""
        deadline = time.monotonic() + CLI_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the process closed its end
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        os.close(master)
        proc.wait(timeout=CLI_TIMEOUT)
        return proc.returncode, out

    def test_progress_bar_with_percentage_when_the_size_is_known(self):
        with tempfile.TemporaryFile() as f:
            f.write(b"".join(b"%d\n" % i for i in range(5000)))
            f.seek(0)
            status, err = self.run_on_pty(["enqueue", "tty", "--lines", "-"], stdin=f)
        self.assertEqual(status, 0, err)
        self.assertIn(b"\r[", err)
        self.assertIn(b"100%  5,000 tasks", err)
        self.assertIn(b"enqueued 5000 tasks", err)
        self.assertEqual(self.client().execute_command("QLEN", "tty"), 5000)

    def test_progress_bar_without_percentage_from_a_pipe(self):
        r, w = os.pipe()
        os.write(w, b"a\nb\nc\n")
        os.close(w)
        status, err = self.run_on_pty(["enqueue", "tty", "--lines", "-"], stdin=r)
        os.close(r)
        self.assertEqual(status, 0, err)
        self.assertIn(b"\r3 tasks", err)
        self.assertNotIn(b"%", err)


class ResultTest(CliTestCase):
    def test_result_prints_the_bytes_of_a_succeeded_task(self):
        r = self.client(decode=False)
        task_id = enqueue(r, "q", "p").decode()
        t = lease_one(r, "q")
        result = bytes(range(256)) + b"\n"
        r.execute_command("ACK", t["lease"], result)
        p = self.cli("result", task_id)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, result)

    def test_result_of_a_dead_task_exits_1_with_its_error(self):
        task_id = self.make_dead(self.client(), "q", "bad input")
        p = self.cli("result", task_id)
        self.assertExit(p, 1, "failed: bad input")
        self.assertEqual(p.stdout, b"")

    def test_result_of_a_cancelled_task_exits_1(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        r.execute_command("CANCEL", task_id)
        self.assertExit(self.cli("result", task_id), 1, "was cancelled")

    def test_result_not_finished_and_unknown(self):
        task_id = enqueue(self.client(), "q", "p")
        self.assertExit(self.cli("result", task_id), 1, "has not finished (state: queued)")
        self.assertExit(self.cli("result", "no-such-id"), 1, "unknown task no-such-id")

    def test_result_wait_returns_once_acked(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        proc = self.popen("result", task_id, "--wait", "15s")
        t = lease_one(r, "q")
        time.sleep(0.2)  # let the CLI block on RESULT WAIT
        r.execute_command("ACK", t["lease"], "late")
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        self.assertEqual((proc.returncode, out), (0, b"late"), err)

    def test_result_wait_times_out(self):
        task_id = enqueue(self.client(), "q", "p")
        start = time.monotonic()
        p = self.cli("result", task_id, "--wait", "300ms")
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertExit(p, 1, "has not finished")


class TaskTest(CliTestCase):
    def test_task_prints_fields_one_per_line(self):
        r = self.client(decode=False)
        task_id = enqueue(r, "q", "p", "NAME", "resize", "PRIORITY", 4).decode()
        t = lease_one(r, "q")
        r.execute_command("ACK", t["lease"], b"two\nlines \xff")
        p = self.cli("task", task_id)
        self.assertExit(p, 0)
        fields = dict(line.split(": ", 1) for line in p.stdout.decode().splitlines())
        self.assertEqual(fields["id"], task_id)
        self.assertEqual(fields["queue"], "q")
        self.assertEqual(fields["name"], "resize")
        self.assertEqual(fields["state"], "succeeded")
        self.assertEqual(fields["attempt"], "1")
        self.assertEqual(fields["priority"], "4")
        self.assertEqual(fields["result"], "two\\nlines \\xff")
        self.assertNotIn("error", fields, "absent fields are left out")
        self.assertGreater(int(fields["created_ms"]), 1_600_000_000_000)
        self.assertGreaterEqual(int(fields["updated_ms"]), int(fields["created_ms"]))

    def test_task_json(self):
        r = self.client()
        task_id = self.make_dead(r, "q", "no such user")
        p = self.cli("task", task_id, "--json")
        self.assertExit(p, 0)
        info = json.loads(p.stdout)
        self.assertEqual(info["id"], task_id)
        self.assertEqual(info["state"], "dead")
        self.assertEqual(info["error"], "no such user")
        self.assertIsNone(info["result"])
        self.assertEqual(info["attempt"], 1)

    def test_task_json_base64_for_bytes_that_are_not_utf8(self):
        r = self.client(decode=False)
        task_id = enqueue(r, "q", "p").decode()
        r.execute_command("ACK", lease_one(r, "q")["lease"], b"\xff\xfe")
        info = json.loads(self.cli("task", task_id, "--json").stdout)
        self.assertEqual((info["result"], info["result_encoding"]), ("//4=", "base64"))

    def test_unknown_task_exits_1(self):
        self.assertExit(self.cli("task", "nope"), 1, "unknown task nope")
        self.assertExit(self.cli("task", "nope", "--json"), 1, "unknown task nope")


class QueuesTest(CliTestCase):
    def test_queues_table_counts_each_state(self):
        r = self.client()
        enqueue(r, "alpha", "1")
        enqueue(r, "alpha", "2")
        enqueue(r, "beta", "later", "DELAY", 60000)
        enqueue(r, "beta", "leased")
        lease_one(r, "beta")
        self.make_dead(r, "gamma")
        p = self.cli("queues")
        self.assertExit(p, 0)
        rows = [line.split() for line in p.stdout.decode().splitlines()]
        self.assertEqual(rows[0], ["QUEUE", "READY", "DELAYED", "LEASED", "DEAD"])
        self.assertEqual(rows[1:], [["alpha", "2", "0", "0", "0"],
                                    ["beta", "0", "1", "1", "0"],
                                    ["gamma", "0", "0", "0", "1"]])
        p = self.cli("queues", "--json")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)[1],
                         {"queue": "beta", "ready": 0, "delayed": 1, "leased": 1, "dead": 0})

    def test_no_queues_prints_the_header_only(self):
        p = self.cli("queues")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.decode().split(), ["QUEUE", "READY", "DELAYED", "LEASED",
                                                     "DEAD"])


class CancelDeadRequeueTest(CliTestCase):
    def test_cancel_then_not_cancellable(self):
        r = self.client()
        task_id = enqueue(r, "q", "p")
        p = self.cli("cancel", task_id)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"cancelled\n")
        self.assertEqual(task_info(r, task_id)["state"], "cancelled")
        self.assertExit(self.cli("cancel", task_id), 1, "not cancellable")
        self.assertExit(self.cli("cancel", "unknown-id"), 1, "not cancellable: unknown task")

    def test_dead_lists_ids_oldest_first(self):
        r = self.client()
        ids = [self.make_dead(r, "q") for _ in range(3)]
        p = self.cli("dead", "q")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.decode().split(), ids)
        p = self.cli("dead", "q", "--count", "2")
        self.assertEqual(p.stdout.decode().split(), ids[:2])
        p = self.cli("dead", "empty")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"")

    def test_requeue_then_not_dead(self):
        r = self.client()
        task_id = self.make_dead(r, "q")
        p = self.cli("requeue", task_id)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"requeued\n")
        self.assertEqual(r.execute_command("QLEN", "q"), 1)
        self.assertExit(self.cli("requeue", task_id), 1, "is queued, not dead")
        self.assertExit(self.cli("requeue", "unknown-id"), 1, "unknown task")


class ConnectTest(CliTestCase):
    def test_conveyor_url_is_honoured_and_connect_overrides_it(self):
        dead_port = free_port()
        p = self.cli("enqueue", "q", "a", url=f"{HOST}:{self.server.port}")
        self.assertExit(p, 0)
        p = self.cli("enqueue", "q", "b", "--connect", f"redis://{HOST}:{self.server.port}",
                     url=f"{HOST}:{dead_port}")
        self.assertExit(p, 0)
        p = self.cli("queues", url=f"redis://{HOST}:{dead_port}")
        self.assertExit(p, 1, f"cannot connect to {HOST}:{dead_port}")
        self.assertEqual(self.client().execute_command("QLEN", "q"), 2)

    def test_unreachable_broker_exits_1_for_every_subcommand(self):
        dead_port = free_port()
        for args in (("enqueue", "q", "x"), ("result", "1"), ("task", "1"), ("queues",),
                     ("cancel", "1"), ("dead", "q"), ("requeue", "1"),
                     ("enqueue", "q", "--lines", "-")):
            with self.subTest(args=args):
                p = self.cli(*args, "--connect", f"{HOST}:{dead_port}", input=b"x\n")
                self.assertExit(p, 1, f"conveyor {args[0]}: cannot connect to "
                                      f"{HOST}:{dead_port}: Connection refused")
                self.assertEqual(p.stdout, b"")

    def test_bad_conveyor_url_is_a_usage_error(self):
        p = self.cli("queues", url="redis://host:99999")
        self.assertExit(p, 2, "CONVEYOR_URL: bad URL")

    def test_wrong_password_is_reported_as_a_connect_failure(self):
        p = self.cli("queues", "--connect", f"redis://:secret@{HOST}:{self.server.port}")
        self.assertExit(p, 1, f"cannot connect to {HOST}:{self.server.port}: ")


if __name__ == "__main__":
    unittest.main()
