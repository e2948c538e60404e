"""Users and permissions against the real server (docs/reliability.md promise 5):
--requirepass, --users (written by `conveyor user add`, re-read on SIGHUP), AUTH and HELLO
AUTH as redis-py and redis-cli send them, NOAUTH before authentication, NOPERM naming the
verb and the queue (task ids and leases checked on the task's queue), failed AUTH logged
with the peer, protected mode, and --maxmemory's -OOM."""

import os
import signal
import socket
import subprocess
import time
import unittest

import redis

from harness import (HOST, ConveyorTestCase, RespError, conveyor_bin, free_port, pairs_to_dict,
                     run_conveyor, wait_until)

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def add_user(users_file, name, password, *rules):
    args = ["user", "add", "--users", users_file, name, "--password", password]
    for r in rules:
        args += ["--allow", r]
    proc = subprocess.run([conveyor_bin(), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def del_user(users_file, name):
    proc = subprocess.run([conveyor_bin(), "user", "del", "--users", users_file, name],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def info_fields(conn, section):
    text = conn.command("INFO", section)
    assert isinstance(text, bytes), f"INFO {section} replied {text!r}"
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


class RequirePassTest(ConveyorTestCase):
    server_args = ("--requirepass", "s3cret")

    def test_commands_before_auth_get_noauth_except_auth_hello_ping_quit(self):
        conn = self.raw()
        for cmd in (("ENQUEUE", "q", "x"), ("LEASE", "FROM", "q"), ("INFO",), ("QLEN", "q"),
                    ("ECHO", "hi"), ("CLIENT", "ID"), ("CONFIG", "GET", "*"), ("DEL", "q")):
            self.assertEqual(conn.command(*cmd), RespError("NOAUTH Authentication required."),
                             cmd)
        self.assertEqual(conn.command("PING"), "PONG")
        self.assertErrorPrefix(conn.command("HELLO", "3"), "NOAUTH HELLO must be called")
        # Unknown commands and wrong arity are answered as such, as Redis does.
        self.assertErrorPrefix(conn.command("NOSUCH"), "ERR unknown command")
        self.assertEqual(conn.command("QUIT"), "OK")
        # Nothing was enqueued by the refused ENQUEUE.
        r = self.client(password="s3cret")
        self.assertEqual(r.execute_command("QLEN", "q"), 0)

    def test_auth_wrong_then_right_password(self):
        conn = self.raw()
        self.assertEqual(conn.command("AUTH", "nope"), RespError(WRONGPASS))
        self.assertEqual(conn.command("ENQUEUE", "q", "x"),
                         RespError("NOAUTH Authentication required."))
        self.assertEqual(conn.command("AUTH", "s3cret"), "OK")
        self.assertIsInstance(conn.command("ENQUEUE", "q", "x"), bytes)
        # AUTH default <password> is the same user.
        conn2 = self.raw()
        self.assertEqual(conn2.command("AUTH", "default", "s3cret"), "OK")
        self.assertEqual(conn2.command("QLEN", "q"), 1)
        self.assertIn("AUTH failed for user 'default' from 127.0.0.1:", self.server.log_text())

    def test_redis_py_with_password_and_without(self):
        r = self.client(password="s3cret")
        tid = r.execute_command("ENQUEUE", "emails", "hello")
        self.assertEqual(pairs_to_dict(r.execute_command("TASK", tid))["state"], "queued")
        with self.assertRaises(redis.AuthenticationError):
            self.client().execute_command("ENQUEUE", "emails", "x")
        with self.assertRaises((redis.AuthenticationError, redis.ResponseError)) as e:
            self.client(password="wrong").ping()
        self.assertIn("WRONGPASS", str(e.exception))

    def test_hello_auth_switches_protocol_and_authenticates(self):
        conn = self.raw()
        reply = conn.command("HELLO", "3", "AUTH", "default", "wrong")
        self.assertEqual(reply, RespError(WRONGPASS))
        self.assertEqual(conn.command("ENQUEUE", "q", "x"),
                         RespError("NOAUTH Authentication required."))
        reply = conn.command("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "w1")
        self.assertIsInstance(reply, (list, dict))
        self.assertIsInstance(conn.command("ENQUEUE", "q", "x"), bytes)
        self.assertEqual(conn.command("CLIENT", "GETNAME"), b"w1")

    def test_redis_cli_with_a_and_without(self):
        out = self.server.redis_cli("-a", "s3cret", "--no-auth-warning", "ENQUEUE", "q", "x")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout.strip(), r"^[0-9a-f]+$")
        out = self.server.redis_cli("ENQUEUE", "q", "x")
        self.assertIn("NOAUTH", out.stdout + out.stderr)

    def test_cli_and_worker_take_the_password_from_the_url(self):
        url = f"redis://:s3cret@{HOST}:{self.server.port}"
        code, out = run_conveyor("enqueue", "--connect", url, "jobs", "payload")
        self.assertEqual(code, 0, out)
        code, out = run_conveyor("enqueue", "--connect", f"{HOST}:{self.server.port}", "jobs",
                                 "p")
        self.assertEqual(code, 1, out)
        self.assertIn("NOAUTH", out)
        code, out = run_conveyor("enqueue", "--connect",
                                 f"redis://:bad@{HOST}:{self.server.port}", "jobs", "p")
        self.assertEqual(code, 1, out)
        self.assertIn("WRONGPASS", out)
        r = self.client(password="s3cret")
        self.assertEqual(r.execute_command("QLEN", "jobs"), 1)

    def test_pre_auth_pipeline_of_auth_then_commands(self):
        # AUTH and the commands after it in one write: each is judged in order.
        conn = self.raw()
        conn.send(b"ENQUEUE q a\r\nAUTH s3cret\r\nENQUEUE q b\r\n")
        self.assertEqual(conn.read_reply(), RespError("NOAUTH Authentication required."))
        self.assertEqual(conn.read_reply(), "OK")
        self.assertIsInstance(conn.read_reply(), bytes)


class UsersFileTest(ConveyorTestCase):
    start_server = False

    def setUp(self):
        super().setUp()
        self.users = os.path.join(self.server_dir(), "users")
        add_user(self.users, "alice", "apw", "enqueue:emails.*", "consume:emails.*")
        add_user(self.users, "viewer", "vpw", "inspect:emails.*")
        add_user(self.users, "ops", "opw", "all:*")
        add_user(self.users, "nobody", "npw")
        self.server = self.start_conveyor("--users", self.users)

    def server_dir(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="conveyor-auth-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d

    def as_user(self, name, password):
        conn = self.raw()
        self.assertEqual(conn.command("AUTH", name, password), "OK")
        return conn

    def test_verbs_and_queue_globs(self):
        alice = self.as_user("alice", "apw")
        tid = alice.command("ENQUEUE", "emails.welcome", "hi")
        self.assertIsInstance(tid, bytes)
        self.assertEqual(alice.command("ENQUEUE", "billing", "x"),
                         RespError("NOPERM User alice has no permissions to enqueue on the "
                                   "'billing' queue"))
        self.assertEqual(alice.command("LPUSH", "billing", "x"),
                         RespError("NOPERM User alice has no permissions to enqueue on the "
                                   "'billing' queue"))
        # LEASE needs consume on every queue it names.
        self.assertErrorPrefix(alice.command("LEASE", "FROM", "emails.welcome", "billing"),
                               "NOPERM User alice has no permissions to consume on the 'billing'")
        tasks = alice.command("LEASE", "FROM", "emails.welcome")
        self.assertEqual(len(tasks), 1)
        task = pairs_to_dict(tasks[0])
        # inspect and admin verbs are not alice's.
        self.assertErrorPrefix(alice.command("TASK", tid),
                               "NOPERM User alice has no permissions to inspect on the "
                               "'emails.welcome' queue")
        self.assertErrorPrefix(alice.command("QLEN", "emails.welcome"), "NOPERM")
        self.assertErrorPrefix(alice.command("CANCEL", tid), "NOPERM")
        self.assertErrorPrefix(alice.command("INFO"),
                               "NOPERM User alice has no permissions to run the 'info' command")
        self.assertErrorPrefix(alice.command("QUEUES"), "NOPERM")
        self.assertErrorPrefix(alice.command("CONFIG", "GET", "*"), "NOPERM")
        self.assertErrorPrefix(alice.command("DEL", "emails.welcome"), "NOPERM")
        # Connection commands need no verb.
        self.assertEqual(alice.command("PING"), "PONG")
        self.assertEqual(alice.command("ECHO", "x"), b"x")
        # ACK is consume on the lease's task's queue.
        self.assertEqual(alice.command("ACK", task["lease"], "done"), 1)
        viewer = self.as_user("viewer", "vpw")
        self.assertEqual(pairs_to_dict(viewer.command("TASK", tid))["state"], b"succeeded")
        self.assertEqual(viewer.command("QLEN", "emails.welcome"), 0)
        self.assertErrorPrefix(viewer.command("QLEN", "billing"), "NOPERM")
        self.assertErrorPrefix(viewer.command("ENQUEUE", "emails.x", "y"), "NOPERM")
        # INFO and QUEUES cover every queue: inspect on emails.* is not enough.
        self.assertErrorPrefix(viewer.command("QUEUES"),
                               "NOPERM User viewer has no permissions to run the 'queues' "
                               "command: it needs inspect on every queue")
        ops = self.as_user("ops", "opw")
        self.assertIn("redis_version", info_fields(ops, "server"))
        self.assertIsInstance(ops.command("ENQUEUE", "billing", "x"), bytes)
        self.assertEqual(ops.command("QUEUES"), [b"billing"])
        info = info_fields(ops, "stats")
        self.assertGreaterEqual(int(info["noperm_rejections"]), 10)

    def test_task_commands_are_checked_on_the_tasks_queue(self):
        ops = self.as_user("ops", "opw")
        billing_id = ops.command("ENQUEUE", "billing", "secret")
        lease = pairs_to_dict(ops.command("LEASE", "FROM", "billing")[0])["lease"]
        alice = self.as_user("alice", "apw")
        # A lease of a task in a queue alice has no verb on is answered as an unknown lease
        # (a NOPERM would name the queue: docs/users.md), and the lease still stands.
        for cmd in (("ACK", lease.decode()), ("FAIL", lease.decode(), "boom"),
                    ("EXTEND", lease.decode(), "1000"), ("RELEASE", lease.decode())):
            self.assertErrorPrefix(alice.command(*cmd), "LEASELOST")
        viewer = self.as_user("viewer", "vpw")
        self.assertIsNone(viewer.command("TASK", billing_id))
        self.assertIsNone(viewer.command("RESULT", billing_id))
        # On a queue the user has some verb on, NOPERM names it: viewer inspects emails.*.
        ops.command("ENQUEUE", "emails.welcome", "hi")
        mail = pairs_to_dict(ops.command("LEASE", "FROM", "emails.welcome")[0])["lease"]
        self.assertErrorPrefix(viewer.command("ACK", mail.decode()),
                               "NOPERM User viewer has no permissions to consume on the "
                               "'emails.welcome' queue")
        self.assertEqual(pairs_to_dict(ops.command("TASK", billing_id))["state"], b"leased")
        self.assertEqual(ops.command("ACK", lease), 1)
        self.assertEqual(ops.command("ACK", mail), 1)
        # An unknown id is let through: the command says it does not exist.
        self.assertIsNone(viewer.command("TASK", "ffffffffffff"))

    def test_user_without_rules_authenticates_and_can_do_nothing(self):
        nobody = self.as_user("nobody", "npw")
        self.assertEqual(nobody.command("PING"), "PONG")
        for cmd in (("ENQUEUE", "q", "x"), ("LEASE", "FROM", "q"), ("QLEN", "q"), ("INFO",)):
            self.assertErrorPrefix(nobody.command(*cmd), "NOPERM User nobody")

    def test_wrong_password_and_unknown_user_are_refused_and_logged(self):
        conn = self.raw()
        self.assertEqual(conn.command("AUTH", "alice", "nope"), RespError(WRONGPASS))
        self.assertEqual(conn.command("AUTH", "mallory", "x"), RespError(WRONGPASS))
        # AUTH <password> alone is the default user, which has no password here.
        self.assertErrorPrefix(conn.command("AUTH", "x"),
                               "ERR AUTH <password> called without any password configured")
        log = self.server.log_text()
        self.assertRegex(log, r"AUTH failed for user 'alice' from 127\.0\.0\.1:\d+")
        self.assertRegex(log, r"AUTH failed for user 'mallory' from 127\.0\.0\.1:\d+")
        self.assertNotIn("nope", log)  # never the password

    def test_redis_py_and_redis_cli_with_username(self):
        r = self.client(username="alice", password="apw")
        self.assertTrue(r.execute_command("ENQUEUE", "emails.a", "x"))
        with self.assertRaises(redis.exceptions.NoPermissionError):
            r.execute_command("ENQUEUE", "other", "x")
        out = self.server.redis_cli("--user", "alice", "--pass", "apw", "--no-auth-warning",
                                    "ENQUEUE", "other", "x")
        self.assertIn("NOPERM", out.stdout)

    def test_sighup_reloads_rules_and_drops_deleted_users(self):
        alice = self.as_user("alice", "apw")
        self.assertIsInstance(alice.command("ENQUEUE", "emails.a", "x"), bytes)
        viewer = self.as_user("viewer", "vpw")
        # New rules for alice: consume only. viewer goes away.
        add_user(self.users, "alice", "apw", "consume:emails.*")
        del_user(self.users, "viewer")
        add_user(self.users, "carol", "cpw", "enqueue:*")
        self.server.send_signal(signal.SIGHUP)
        wait_until(lambda: "users file" in self.server.log_text()
                   and "reloaded" in self.server.log_text(), 10, message="reload logged")
        self.assertErrorPrefix(alice.command("ENQUEUE", "emails.a", "x"), "NOPERM")
        self.assertEqual(viewer.command("QLEN", "emails.a"),
                         RespError("NOAUTH Authentication required."))
        carol = self.as_user("carol", "cpw")
        self.assertIsInstance(carol.command("ENQUEUE", "anything", "x"), bytes)
        # A broken file is not loaded: the previous users stay.
        with open(self.users, "a") as f:
            f.write("user broken plaintext-password\n")
        self.server.send_signal(signal.SIGHUP)
        wait_until(lambda: "users file not reloaded" in self.server.log_text(), 10,
                   message="failed reload logged")
        self.assertIsInstance(carol.command("ENQUEUE", "anything", "y"), bytes)
        self.assertEqual(self.raw().command("AUTH", "carol", "cpw"), "OK")
        self.assertTrue(self.server.is_running())


def slow_user_line(name, password, iterations):
    """A users-file line whose hash takes `iterations` PBKDF2 rounds (conveyor user add uses
    10,000; more makes a password check last long enough to watch other clients meanwhile)."""
    import base64
    import hashlib
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    encoded = (f"pbkdf2-sha256${iterations}${base64.b64encode(salt).decode()}$"
               f"{base64.b64encode(digest).decode()}")
    return f"user {name} {encoded} allow all:*\n"


class SlowPasswordCheckTest(ConveyorTestCase):
    """PBKDF2 runs off the core thread: while one AUTH is being checked, other clients are
    served, and the connection that sent AUTH runs its next commands only after the verdict."""
    start_server = False
    case_timeout = 90.0

    def test_other_clients_are_served_while_a_password_is_checked(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="conveyor-auth-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        users = os.path.join(d, "users")
        t0 = time.monotonic()
        line = slow_user_line("slow", "pw", 2_000_000)
        derive_s = time.monotonic() - t0
        with open(users, "w") as f:
            f.write(line)
        add_user(users, "fast", "fpw", "all:*")
        self.server = self.start_conveyor("--users", users)
        fast = self.raw()
        self.assertEqual(fast.command("AUTH", "fast", "fpw"), "OK")
        slow = self.raw(timeout=60)
        # AUTH and a command behind it in one write: the command waits for the verdict.
        slow.send(b"AUTH slow pw\r\nENQUEUE q behind-auth\r\n")
        sent = time.monotonic()
        served = 0
        while time.monotonic() - sent < derive_s / 4:
            self.assertEqual(fast.command("PING"), "PONG")
            self.assertIsInstance(fast.command("ENQUEUE", "q", "meanwhile"), bytes)
            served += 1
        self.assertGreater(served, 0)
        import select
        readable, _, _ = select.select([slow.sock], [], [], 0)
        self.assertEqual(readable, [], "a reply came before the password check could be done")
        self.assertEqual(slow.read_reply(), "OK")
        self.assertIsInstance(slow.read_reply(), bytes)
        self.assertEqual(fast.command("QLEN", "q"), served + 1)
        # A success is remembered: the same user and password again is answered at once.
        again = self.raw(timeout=60)
        t1 = time.monotonic()
        self.assertEqual(again.command("AUTH", "slow", "pw"), "OK")
        self.assertLess(time.monotonic() - t1, derive_s / 2)
        # A wrong password is checked in full, and refused.
        self.assertEqual(self.raw(timeout=60).command("AUTH", "slow", "bad"), RespError(WRONGPASS))


class StartupErrorsTest(ConveyorTestCase):
    start_server = False

    def test_missing_users_file_refuses_to_start(self):
        code, out = run_conveyor("server", "--port", str(free_port()), "--data-dir",
                                 "/tmp/conveyor-auth-never", "--users", "/nonexistent/users")
        self.assertEqual(code, 1, out)
        self.assertIn("cannot use --users", out)

    def test_default_user_in_file_and_requirepass_conflict(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="conveyor-auth-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        users = os.path.join(d, "users")
        add_user(users, "default", "pw", "all:*")
        code, out = run_conveyor("server", "--port", str(free_port()), "--data-dir",
                                 os.path.join(d, "data"), "--users", users, "--requirepass", "x")
        self.assertEqual(code, 1, out)
        self.assertIn("defines user 'default'", out)

    def test_bad_maxmemory_and_protected_mode_values(self):
        for args in (("--maxmemory", "lots"), ("--maxmemory", "10tb"),
                     ("--protected-mode", "maybe")):
            code, out = run_conveyor("server", "--port", str(free_port()), *args)
            self.assertEqual(code, 1, (args, out))
            self.assertIn(args[0], out)


def non_loopback_address():
    """An address of this machine that is not loopback, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
        for a in out.stdout.split():
            if ":" not in a and not a.startswith("127."):
                return a
    except (OSError, subprocess.SubprocessError):
        pass
    return None


class ProtectedModeTest(ConveyorTestCase):
    start_server = False

    def start_on_all_interfaces(self, *args):
        port = free_port()
        return self.start_conveyor("--bind", "0.0.0.0", "--port", str(port), "--data-dir",
                                   "data", *args, use_default_args=False, port=port)

    def connect_from_outside(self, server, address):
        s = socket.create_connection((address, server.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"PING\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                return data, True  # closed by the server
            data += chunk
            if data.startswith(b"+PONG"):
                return data, False
        return data, False

    def test_non_loopback_client_is_refused_without_password(self):
        address = non_loopback_address()
        if address is None:
            self.skipTest("this machine has no non-loopback IPv4 address to connect from")
        server = self.start_on_all_interfaces()
        data, closed = self.connect_from_outside(server, address)
        self.assertTrue(data.startswith(b"-DENIED Conveyor is running in protected mode"), data)
        self.assertIn(b"--requirepass", data)
        self.assertTrue(data.endswith(b"\r\n") and data.count(b"\r\n") == 1, data)
        self.assertTrue(closed)
        # Loopback clients are served.
        self.assertEqual(server.redis_cli("PING").stdout.strip(), "PONG")

    def test_password_or_protected_mode_no_serves_outside_clients(self):
        address = non_loopback_address()
        if address is None:
            self.skipTest("this machine has no non-loopback IPv4 address to connect from")
        with_pass = self.start_on_all_interfaces("--requirepass", "pw")
        data, closed = self.connect_from_outside(with_pass, address)
        self.assertEqual(data, b"+PONG\r\n")
        open_server = self.start_on_all_interfaces("--protected-mode", "no")
        data, closed = self.connect_from_outside(open_server, address)
        self.assertEqual(data, b"+PONG\r\n")


class MaxMemoryTest(ConveyorTestCase):
    server_args = ("--maxmemory", "24mb", "--fsync", "no")

    def test_enqueue_refused_past_maxmemory_while_lease_ack_and_reads_work(self):
        r = self.client(decode=False)
        chunk = b"x" * (1 << 20)
        refused = None
        ids = []
        for i in range(200):
            try:
                ids.append(r.execute_command("ENQUEUE", "big", chunk))
            except redis.ResponseError as e:
                refused = str(e)
                break
        self.assertIsNotNone(refused, "200 MiB were accepted under --maxmemory 24mb")
        self.assertTrue(refused.startswith("OOM command not allowed when used memory > "
                                           "'maxmemory'"), refused)
        self.assertGreater(len(ids), 5)
        # (A push as large as the refused ENQUEUE: memory in use hovers just under the limit
        # once the refused request's argument is freed.)
        with self.assertRaises(redis.ResponseError) as e:
            r.execute_command("LPUSH", "big", chunk)
        self.assertIn("OOM", str(e.exception))
        info = info_fields(self.raw(), "memory")
        self.assertEqual(info["maxmemory"], str(24 * 1024 * 1024))
        self.assertEqual(info["maxmemory_policy"], "noeviction")
        # The refused request's own argument counted when it was refused; INFO reads the
        # allocator again, without it.
        used = int(info["used_memory"])
        self.assertGreater(used, 22 * 1024 * 1024)
        self.assertEqual(info["maxmemory_reached"], "1" if used > 24 * 1024 * 1024 else "0")
        # Nothing was evicted; LEASE, ACK, TASK, QLEN still work.
        self.assertEqual(r.execute_command("QLEN", "big"), len(ids))
        reply = r.execute_command("LEASE", "COUNT", "3", "FROM", "big")
        self.assertEqual(len(reply), 3)
        for t in reply:
            self.assertEqual(r.execute_command("ACK", pairs_to_dict(t)["lease"]), 1)
        self.assertEqual(pairs_to_dict(r.execute_command("TASK", ids[0]))["state"],
                         b"succeeded")
        # Freeing memory lets new tasks in again.
        r.execute_command("DEL", "big")
        wait_until(lambda: self._enqueue_ok(r), 5, message="ENQUEUE accepted after DEL")

    def _enqueue_ok(self, r):
        try:
            r.execute_command("ENQUEUE", "small", b"x")
            return True
        except redis.ResponseError:
            return False


if __name__ == "__main__":
    unittest.main()
