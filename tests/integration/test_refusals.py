"""How the CLI and `conveyor worker` meet a broker that refuses them (docs/worker.md
"Refusals", docs/cli.md "Exit statuses"): protected mode (-DENIED to a client from another
address of this machine), a password required and not given (-NOAUTH), a user without the
right (-NOPERM), and a real redis-server on the port (not a Conveyor server). Each gives one
line saying why and what to do, and exit status 1 within seconds, after a bounded number of
connections; a broker that is merely down is retried with the backoff until it is back. Also
--user/--password, CONVEYOR_USER/CONVEYOR_PASSWORD, and passwords kept out of messages."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (HOST, ConveyorTestCase, conveyor_bin, free_port_outside_ephemeral_range,
                     task_info, wait_until)
from test_auth import add_user, non_loopback_address
from test_redis_list_differential import start_redis

RUN_TIMEOUT = 30.0


class RefusalTestCase(ConveyorTestCase):
    start_server = False
    case_timeout = 60.0

    def run_conveyor(self, *args, env=None, timeout=RUN_TIMEOUT):
        """Runs `conveyor <args>` to its end; returns (status, stdout, stderr, seconds)."""
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("CONVEYOR_URL", "CONVEYOR_USER", "CONVEYOR_PASSWORD")}
        full_env.update(env or {})
        start = time.monotonic()
        proc = subprocess.run([conveyor_bin(), *[str(a) for a in args]], capture_output=True,
                              env=full_env, timeout=timeout, stdin=subprocess.DEVNULL)
        return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
                proc.stderr.decode("utf-8", "replace"), time.monotonic() - start)

    def worker(self, url, *args, env=None):
        return self.run_conveyor("worker", "--connect", url, "--queue", "q", "--builtin", "echo",
                                 "--status-interval", "0", *args, env=env)

    def connections_made_by(self, server, action, password=None):
        """Runs action(); returns (its result, the connections the server accepted meanwhile),
        read from INFO stats total_connections_received (the asking connections are not
        counted)."""
        def total():
            with server.raw() as conn:
                if password is not None:
                    self.assertEqual(conn.command("AUTH", password), "OK")
                text = conn.command("INFO", "stats").decode()
            return int(re.search(r"total_connections_received:(\d+)", text).group(1))
        before = total()
        result = action()
        return result, total() - before - 1

    def assertRefusedWorker(self, status, err, seconds, *parts):
        self.assertEqual(status, 1, err)
        self.assertLess(seconds, 10.0, err)
        last = err.strip().splitlines()[-1]
        self.assertIn("refused the worker 4 times; giving up: ", last)
        for part in parts:
            self.assertIn(part, last)


class ProtectedModeTest(RefusalTestCase):
    def test_cli_and_worker_from_another_address_explain_and_exit_1(self):
        address = non_loopback_address()
        if address is None:
            self.skipTest("this machine has no non-loopback IPv4 address to connect from")
        port = free_port_outside_ephemeral_range()
        server = self.start_conveyor("--bind", "0.0.0.0", "--port", port, "--data-dir", "data",
                                     use_default_args=False, port=port)
        (status, out, err, _), made = self.connections_made_by(
            server, lambda: self.run_conveyor("queues", "--connect", f"{address}:{port}"))
        self.assertEqual(status, 1, err)
        self.assertEqual(out, "")
        self.assertEqual(err, f"conveyor queues: cannot connect to {address}:{port}: the server "
                              f"is in protected mode (DENIED): with no password and no users "
                              f"configured it serves only clients on its own machine; start it "
                              f"with --requirepass or --users (and give this client the "
                              f"password), or with --protected-mode no\n")
        self.assertEqual(made, 1)

        (status, out, err, seconds), made = self.connections_made_by(
            server, lambda: self.worker(f"{address}:{port}"))
        self.assertRefusedWorker(status, err, seconds, f"the broker at {address}:{port}",
                                 "protected mode (DENIED)", "--requirepass")
        # The first attempt and three retries with the backoff (100, 200, 400 ms): no loop.
        self.assertEqual(made, 4, err)
        self.assertGreaterEqual(seconds, 0.6, err)
        self.assertEqual(len(re.findall(r"refused the lease connection \(\d of 4", err)), 3, err)
        self.assertNotIn("leasing from", err)


class PasswordTest(RefusalTestCase):
    def setUp(self):
        super().setUp()
        self.server = self.start_conveyor("--requirepass", "s3cret")
        self.url = f"{HOST}:{self.server.port}"

    def test_worker_without_the_password_exits_1_with_where_the_password_goes(self):
        (status, _, err, seconds), made = self.connections_made_by(
            self.server, lambda: self.worker(self.url), password="s3cret")
        self.assertRefusedWorker(status, err, seconds, "NOAUTH Authentication required.",
                                 "--password or $CONVEYOR_PASSWORD",
                                 "redis://[user]:password@host:port")
        # Each attempt is one lease connection that gets NOAUTH; the report connection is
        # made once at start.
        self.assertEqual(made, 5, err)

    def test_cli_without_the_password_says_where_it_goes(self):
        status, out, err, _ = self.run_conveyor("enqueue", "q", "x", "--connect", self.url)
        self.assertEqual(status, 1, err)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith(f"conveyor enqueue: {self.url}: the server requires a "
                                       f"password (NOAUTH Authentication required.): "), err)
        self.assertIn("--password or $CONVEYOR_PASSWORD", err)
        self.assertIn("redis://[user]:password@host:port", err)

    def test_password_from_the_flag_or_the_variable_and_never_printed(self):
        status, out, err, _ = self.run_conveyor("enqueue", "q", "a", "--connect", self.url,
                                                "--password", "s3cret")
        self.assertEqual(status, 0, err)
        status, out, err, _ = self.run_conveyor("enqueue", "q", "b", "--connect", self.url,
                                                env={"CONVEYOR_PASSWORD": "s3cret"})
        self.assertEqual(status, 0, err)
        # The flag wins over the variable.
        status, out, err, _ = self.run_conveyor("queues", "--connect", self.url, "--password",
                                                "wr0ng-pw", env={"CONVEYOR_PASSWORD": "s3cret"})
        self.assertEqual(status, 1, err)
        self.assertIn("WRONGPASS", err)
        self.assertIn("check --user and --password", err)
        self.assertNotIn("wr0ng-pw", err)
        r = self.client(password="s3cret")
        self.assertEqual(r.execute_command("QLEN", "q"), 2)

    def test_worker_with_the_password_in_the_variable_runs_tasks(self):
        r = self.client(password="s3cret")
        task_id = r.execute_command("ENQUEUE", "q", "hello")
        proc = subprocess.Popen(
            [conveyor_bin(), "worker", "--connect", self.url, "--queue", "q", "--builtin", "echo"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "CONVEYOR_PASSWORD": "s3cret"}, start_new_session=True)
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        self.assertEqual(r.execute_command("RESULT", task_id, "WAIT", 10000), "hello")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn(b"s3cret", err)

    def test_bad_urls_never_print_the_password(self):
        for args, env in (
                (("queues", "--connect", "redis://u:hunter2@host:99999"), None),
                (("queues",), {"CONVEYOR_URL": "redis://:hunter2@host/x"}),
                (("worker", "--queue", "q", "--builtin", "echo", "--connect",
                  "redis://u:hunter2@host:0"), None)):
            with self.subTest(args=args):
                status, out, err, _ = self.run_conveyor(*args, env=env)
                self.assertEqual(status, 2, err)
                self.assertIn("bad URL", err)
                self.assertIn(":***@host", err)
                self.assertNotIn("hunter2", out + err)

    def test_a_misspelt_password_flag_is_refused_without_its_value(self):
        for command in (("worker", "--queue", "q", "--builtin", "echo"), ("queues",)):
            with self.subTest(command=command[0]):
                status, out, err, _ = self.run_conveyor(*command, "--pasword=hunter2",
                                                        "--connect", self.url)
                self.assertEqual(status, 2, err)
                self.assertIn("'--pasword'", err)
                self.assertNotIn("hunter2", out + err)

    def test_a_user_without_a_password_is_a_usage_error(self):
        status, _, err, _ = self.run_conveyor("queues", "--connect", self.url, "--user", "bob")
        self.assertEqual(status, 2, err)
        self.assertIn("a user name (--user) needs a password", err)
        status, _, err, _ = self.run_conveyor("worker", "--connect", self.url, "--queue", "q",
                                              "--builtin", "echo", env={"CONVEYOR_USER": "bob"})
        self.assertEqual(status, 2, err)
        self.assertIn("a user name ($CONVEYOR_USER) needs a password", err)


class UsersTest(RefusalTestCase):
    def setUp(self):
        super().setUp()
        workdir = tempfile.mkdtemp(prefix="conveyor-refusals-")
        self.addCleanup(shutil.rmtree, workdir, True)
        users = os.path.join(workdir, "users")
        add_user(users, "producer", "ppw", "enqueue:*")
        add_user(users, "runner", "rpw", "consume:*")
        add_user(users, "ops", "opw", "all:*")
        self.server = self.start_conveyor("--users", users)
        self.url = f"{HOST}:{self.server.port}"

    def test_worker_whose_user_may_not_consume_exits_1_naming_the_rule(self):
        status, _, err, seconds = self.worker(self.url, "--user", "producer", "--password", "ppw")
        self.assertRefusedWorker(status, err, seconds,
                                 "NOPERM User producer has no permissions to consume",
                                 "conveyor user add --allow")
        self.assertNotIn("ppw", err)

    def test_user_and_password_from_flags_and_variables(self):
        status, out, err, _ = self.run_conveyor("enqueue", "jobs", "x", "--connect", self.url,
                                                "--user", "producer", "--password", "ppw")
        self.assertEqual(status, 0, err)
        task_id = out.strip()
        status, out, err, _ = self.run_conveyor(
            "enqueue", "jobs", "y", "--connect", self.url,
            env={"CONVEYOR_USER": "producer", "CONVEYOR_PASSWORD": "ppw"})
        self.assertEqual(status, 0, err)
        # producer may not inspect: NOPERM, explained.
        status, out, err, _ = self.run_conveyor("task", task_id, "--connect", self.url,
                                                "--user", "producer", "--password", "ppw")
        self.assertEqual(status, 1, err)
        self.assertIn(f"conveyor task: {self.url}: not permitted (NOPERM User producer", err)
        # The runner's worker takes both tasks.
        proc = subprocess.Popen(
            [conveyor_bin(), "worker", "--connect", self.url, "--queue", "jobs", "--builtin",
             "echo", "--user", "runner"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env={**os.environ, "CONVEYOR_PASSWORD": "rpw"},
            start_new_session=True)
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        ops = self.client(username="ops", password="opw")
        wait_until(lambda: task_info(ops, task_id)["state"] == "succeeded", 10,
                   message="the runner's worker to finish the task")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err)


class NotConveyorTest(RefusalTestCase):
    def test_worker_and_cli_against_redis_server_exit_1(self):
        port = start_redis(self)
        status, _, err, seconds = self.worker(f"{HOST}:{port}")
        self.assertRefusedWorker(status, err, seconds, "not a Conveyor server",
                                 "unknown command 'LEASE'", "check the host and port")
        status, out, err, _ = self.run_conveyor("enqueue", "q", "x", "--connect", f"{HOST}:{port}")
        self.assertEqual(status, 1, err)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith(f"conveyor enqueue: {HOST}:{port}: not a Conveyor server "
                                       f"(it answered: ERR unknown command 'ENQUEUE'"), err)


class BrokerDownTest(RefusalTestCase):
    def test_worker_backs_off_while_the_broker_is_down_and_resumes(self):
        port = free_port_outside_ephemeral_range()
        server = self.start_conveyor(port=port)
        workdir = tempfile.mkdtemp(prefix="conveyor-refusals-")
        self.addCleanup(shutil.rmtree, workdir, True)
        log_path = os.path.join(workdir, "worker.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [conveyor_bin(), "worker", "--connect", f"{HOST}:{port}", "--queue", "q",
                 "--builtin", "echo", "--log-level", "debug", "--status-interval", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))

        def log_text():
            with open(log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")

        wait_until(lambda: "leasing from q" in log_text(), 10, message="the worker to start")
        self.assertEqual(server.stop(), 0)
        time.sleep(4.0)
        self.assertIsNone(proc.poll(), log_text())
        delays = [int(d) for d in re.findall(r"cannot reconnect lease connection: .*; next in "
                                             r"(\d+) ms\)", log_text())]
        # 100, 200, 400, 800, 1600 ms ... : a handful of attempts in 4 s, never faster.
        self.assertGreaterEqual(len(delays), 3, log_text())
        self.assertLessEqual(len(delays), 7, log_text())
        self.assertEqual(delays, sorted(delays), log_text())
        self.assertEqual(delays[:3], [200, 400, 800], log_text())
        server.restart()
        r = server.client()
        self.addCleanup(r.close)
        task_id = r.execute_command("ENQUEUE", "q", "back")
        self.assertEqual(r.execute_command("RESULT", task_id, "WAIT", 15000), "back")
        self.assertIn("reconnected lease connection", log_text())
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=15), 0, log_text())


if __name__ == "__main__":
    unittest.main()
