"""Integration-test harness: runs the real `conveyor` binary on a free port.

Every test case gets its own server process (own port, own data directory, own process
group), a watchdog that kills the server when the case overruns its time limit, and the
server's stdout/stderr in a log file that is printed when the case fails or errors.

Environment:
  CONVEYOR_BIN   path to the binary (ctest sets it); default ../../build/conveyor
"""

import contextlib
import faulthandler
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
HOST = "127.0.0.1"


def conveyor_bin():
    path = os.environ.get("CONVEYOR_BIN") or os.path.join(REPO_ROOT, "build", "conveyor")
    return os.path.abspath(path)


def free_port():
    """A port nobody listens on right now. Another process may still take it before the
    server binds; ConveyorServer.start() retries on a bind collision."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_port_outside_ephemeral_range():
    """A free port below the kernel's ephemeral range, for a server restarted on the same
    port while clients keep reconnecting: a client's connect() to a port nobody listens on
    can otherwise, rarely, pick that very port as its own local port (a TCP self-connect),
    which then holds the port so the restart cannot bind it."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    start, end = max(1024, low - 12000), low - 1
    for _ in range(200):
        port = random.randint(start, end)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    return free_port()


def wait_until(predicate, timeout, interval=0.01, message="condition"):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass
    (AssertionError). Tests use this instead of fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def run_conveyor(*args, timeout=10.0, prefix=()):
    """Runs `conveyor <args>` to completion (for --help and start-up refusals) in its own
    process group, killed whole if it outlives `timeout`; `prefix` goes before the binary
    (setpriv, to run it as another user). Returns (exit code or None when it had to be
    killed, combined output)."""
    proc = subprocess.Popen([*prefix, conveyor_bin(), *[str(a) for a in args]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace")


def stop_process_group(proc, grace=10):
    """Ends a process started with start_new_session=True: SIGTERM to its group (a warm
    shutdown), up to `grace` seconds, then SIGKILL to the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def mount_tmpfs_data_dir(case, size, prefix):
    """A temporary work directory whose `data` is a tmpfs of `size` ("4m"), unmounted at the
    case's cleanup (mounting needs root, which `make test` has: it installs packages with
    apt-get). Returns (workdir, data)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", data],
                             capture_output=True, text=True)
    case.assertEqual(mounted.returncode, 0,
                     f"cannot mount a tmpfs for the full-disk test: {mounted.stderr}")
    case.addCleanup(subprocess.run, ["umount", "-l", data])
    return workdir, data


def fill_disk(data, leave):
    """A filler file in `data` that leaves about `leave` bytes free; returns its path."""
    st = os.statvfs(data)
    path = os.path.join(data, "filler")
    with open(path, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return path


class ServerStartError(Exception):
    pass


class ConveyorServer:
    """One `conveyor server` process in its own process group.

    `extra_args` are appended to the command line. With `use_default_args=False` only
    `extra_args` follow `conveyor server` (for config-file tests, which then choose the
    port themselves and pass it as `port`)."""

    READY_TIMEOUT = 10.0
    BIND_RETRIES = 5

    def __init__(self, extra_args=(), use_default_args=True, port=None, workdir=None,
                 amqp=False, config_file=None):
        self.extra_args = [str(a) for a in extra_args]
        # `conveyor server <config_file> ...`: the file goes first, as redis-server takes it.
        self.config_file = config_file
        # AMQP (docs/amqp.md): amqp=True listens on a free port (`amqp_port`, chosen anew
        # with the RESP port); amqp=False passes --amqp-port 0, so that parallel servers
        # never collide on the default 5673.
        self.amqp = amqp
        self.amqp_port = None
        self.use_default_args = use_default_args
        self.fixed_port = port
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="conveyor-it-")
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "server.log")
        self.port = None
        self.proc = None
        self.returncode = None
        self.retired = False  # set by the watchdog: restart() refuses from then on
        self.restarts = 0

    # ---- lifecycle ------------------------------------------------------------------

    def command_line(self, port):
        cmd = [conveyor_bin(), "server"] + ([self.config_file] if self.config_file else [])
        if self.use_default_args:
            cmd += ["--port", str(port), "--bind", HOST, "--data-dir", self.data_dir]
        if "--amqp-port" not in self.extra_args:
            cmd += ["--amqp-port", str(self.amqp_port if self.amqp else 0)]
        return cmd + self.extra_args

    def start(self):
        if not os.access(conveyor_bin(), os.X_OK):
            raise ServerStartError(f"conveyor binary not found or not executable: "
                                   f"{conveyor_bin()} (set CONVEYOR_BIN)")
        attempts = 1 if self.fixed_port else self.BIND_RETRIES
        for attempt in range(attempts):
            port = self.fixed_port or free_port()
            # A fixed RESP port is for restarts on the same ports: the AMQP one is then taken
            # outside the ephemeral range too (free_port_outside_ephemeral_range).
            if self.amqp:
                self.amqp_port = (free_port_outside_ephemeral_range() if self.fixed_port
                                  else free_port())
            else:
                self.amqp_port = None
            self._spawn(port)
            if self._wait_ready():
                return self
            # The process died. A bind collision (someone took the port between our probe
            # and the server's bind) is retried on a fresh port; anything else is fatal.
            collided = re.search(r"address already in use|EADDRINUSE|bind",
                                 self.log_text(), re.IGNORECASE)
            if not collided or attempt == attempts - 1:
                break
        raise ServerStartError(
            f"conveyor did not answer PING on {HOST}:{self.port} within "
            f"{self.READY_TIMEOUT}s (exit code {self.proc.poll()}); log:\n{self.log_text()}")

    def _spawn(self, port):
        self.port = port
        with open(self.log_path, "ab") as log:
            log.write(f"=== {' '.join(self.command_line(port))}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command_line(port), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        self.returncode = None

    def _wait_ready(self):
        deadline = time.monotonic() + self.READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                    s.settimeout(1.0)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG") and self._amqp_ready():
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _amqp_ready(self):
        if not self.amqp:
            return True
        try:
            socket.create_connection((HOST, self.amqp_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.is_running():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        """Exit code, or None when the process is still running after `timeout` s."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Asks the server to stop with `sig`; kills the whole group if it does not exit in
        `timeout` s. Returns the exit code of the polite attempt (None if it had to be
        killed)."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            self.send_signal(sig)
            code = self.wait_exit(timeout)
        self.kill_group()
        return code

    def kill_group(self):
        """SIGKILL to the server's process group (the server and anything it started)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def kill9(self):
        """kill -9 of the whole process group, as a crash: no shutdown code runs. Waits
        until the server is gone; returns its exit code (-9)."""
        self.kill_group()
        self.returncode = self.proc.poll() if self.proc is not None else None
        return self.returncode

    def restart(self, sig=signal.SIGTERM, timeout=5.0, bind_wait=10.0):
        """Stops the server (`sig`: SIGTERM for a clean stop, SIGKILL for a crash; nothing
        is sent when it is not running) and starts it again on the same port with the same
        data directory and flags. Returns the exit code of the stop (None when it was not
        running or had to be killed). A port still held for a moment (EADDRINUSE) is
        retried for up to `bind_wait` s; anything else raises ServerStartError."""
        if self.retired:
            raise ServerStartError("server retired by the watchdog; not restarting")
        if self.port is None:
            raise ServerStartError("restart() before start()")
        code = None
        if self.is_running():
            code = self.kill9() if sig == signal.SIGKILL else self.stop(sig, timeout)
        else:
            self.kill_group()
        deadline = time.monotonic() + bind_wait
        while True:
            if self.retired:
                raise ServerStartError("server retired by the watchdog; not restarting")
            log_size = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            self._spawn(self.port)
            if self._wait_ready():
                self.restarts += 1
                return code
            self.kill_group()
            tail = self.log_text()[log_size:]
            if (not re.search(r"address already in use|EADDRINUSE", tail, re.IGNORECASE)
                    or time.monotonic() >= deadline):
                raise ServerStartError(
                    f"conveyor did not restart on {HOST}:{self.port} (exit code "
                    f"{self.proc.poll()}); log:\n{self.log_text()[-20000:]}")
            time.sleep(0.1)

    def cleanup(self):
        self.kill_group()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- introspection --------------------------------------------------------------

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("VmRSS not found")

    # ---- clients --------------------------------------------------------------------

    def client(self, decode=True, timeout=10.0, **kwargs):
        """A redis-py client. Every socket call has a timeout, so a hung server fails the
        test instead of hanging it."""
        return redis.Redis(host=HOST, port=self.port, decode_responses=decode,
                           socket_timeout=timeout, socket_connect_timeout=5, **kwargs)

    def raw(self, timeout=5.0):
        return RawConnection(HOST, self.port, timeout)

    def redis_cli(self, *args, timeout=20.0, input=None):
        """Runs redis-cli against the server; returns the CompletedProcess (text)."""
        cmd = ["redis-cli", "-h", HOST, "-p", str(self.port)] + [str(a) for a in args]
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout)


class RespError(str):
    """An error reply, kept as its text (without the leading '-')."""


class RawConnection:
    """A plain socket speaking RESP by hand, for byte-exact tests.

    read_reply() decodes one RESP2/RESP3 reply: simple strings -> str, bulk -> bytes,
    integers -> int, nil -> None, arrays/sets/pushes -> list, maps -> dict (keys decoded when
    bulk), errors -> RespError. read_raw_reply() returns the reply's exact bytes."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def command(self, *args):
        """Sends one command as a RESP array of bulk strings and returns its reply."""
        self.send(encode_command(*args))
        return self.read_reply()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"_":
            return None
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        if kind == b"(":
            return int(rest)
        if kind in (b"$", b"=", b"!"):
            n = int(rest)
            if n < 0:
                return None
            data = self._exact(n)
            return RespError(data.decode()) if kind == b"!" else data
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        if kind in (b"%", b"|"):
            out = {}
            for _ in range(int(rest)):
                key = self.read_reply()
                out[key.decode() if isinstance(key, bytes) else key] = self.read_reply()
            if kind == b"|":  # attributes precede the real reply
                return self.read_reply()
            return out
        raise AssertionError(f"unexpected RESP type byte in line {line!r}")

    def read_until_closed(self, deadline_s):
        """All bytes until the server closes the connection. Raises AssertionError if it
        is still open after `deadline_s` seconds."""
        data = self.buf
        self.buf = b""
        end = time.monotonic() + deadline_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {deadline_s}s; "
                                     f"got {data!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def peek(self, n):
        """The next `n` bytes, left unread."""
        while len(self.buf) < n:
            self._fill()
        return self.buf[:n]

    def read_exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def encode_command(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def pairs_to_dict(reply):
    """A flat [field, value, field, value, ...] reply (or a RESP3 map) as a dict with str keys.
    Values stay as the client returned them."""
    if isinstance(reply, dict):
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in reply.items()}
    assert isinstance(reply, list) and len(reply) % 2 == 0, \
        f"expected a flat field/value array, got {reply!r}"
    out = {}
    for i in range(0, len(reply), 2):
        key = reply[i]
        out[key.decode() if isinstance(key, bytes) else key] = reply[i + 1]
    return out


class ConveyorTestCase(unittest.TestCase):
    """Base class: one fresh server per test case, started with `server_args`.

    `case_timeout` is the watchdog: when a case runs longer, the server's process group is
    killed (so any client blocked on it fails at once) and, if the case is still stuck
    `hard_grace` s later, every thread's traceback is dumped and the process exits."""

    server_args = ()
    start_server = True
    case_timeout = 30.0
    hard_grace = 15.0

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        problems_before = len(result.failures) + len(result.errors)
        self._servers = []
        self._watchdog_fired = False
        self._log_printed = False
        try:
            super().run(result)
        finally:
            failed = len(result.failures) + len(result.errors) > problems_before
            for server in self._servers:
                if failed and not self._log_printed:
                    self._print_log(server)
                server.cleanup()
        return result

    def _print_log(self, server):
        sys.stderr.write(f"\n----- conveyor log ({self.id()}, port {server.port}"
                         f"{', WATCHDOG FIRED' if self._watchdog_fired else ''}) -----\n")
        sys.stderr.write(server.log_text()[-20000:])
        sys.stderr.write("\n----- end of conveyor log -----\n")

    def setUp(self):
        watchdog = threading.Timer(self.case_timeout, self._on_watchdog)
        watchdog.daemon = True
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        faulthandler.dump_traceback_later(self.case_timeout + self.hard_grace, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.server = self.start_conveyor(*self.server_args) if self.start_server else None

    def _on_watchdog(self):
        self._watchdog_fired = True
        sys.stderr.write(f"\nWATCHDOG: {self.id()} exceeded {self.case_timeout}s; "
                         f"killing its server(s)\n")
        for server in self._servers:
            server.retired = True  # a test that restarts servers must not revive it
            server.kill_group()
            # Printed now: if the case stays stuck, the hard timeout exits the process.
            self._print_log(server)
        self._log_printed = True

    def start_conveyor(self, *extra_args, use_default_args=True, port=None, workdir=None,
                       amqp=False, config_file=None):
        """Starts another server for this case; it is stopped on teardown, pass or fail."""
        server = ConveyorServer(extra_args, use_default_args=use_default_args, port=port,
                                workdir=workdir, amqp=amqp, config_file=config_file)
        self._servers.append(server)
        self.addCleanup(server.kill_group)
        server.start()
        return server

    # ---- helpers used across files ------------------------------------------------------

    def client(self, decode=True, **kwargs):
        c = self.server.client(decode=decode, **kwargs)
        self.addCleanup(c.close)
        return c

    def raw(self, timeout=5.0):
        conn = self.server.raw(timeout)
        self.addCleanup(conn.close)
        return conn

    def assertErrorPrefix(self, reply, prefix):
        self.assertIsInstance(reply, RespError, f"expected an error reply, got {reply!r}")
        self.assertTrue(reply.startswith(prefix),
                        f"expected an error starting {prefix!r}, got {reply!r}")

    def assertServerAlive(self):
        """Another client still gets PONG."""
        with self.server.raw(timeout=2.0) as other:
            other.send(b"PING\r\n")
            self.assertEqual(other.read_exactly(7), b"+PONG\r\n")


# ---- task helpers (redis-py with decode_responses=True) ----------------------------------

def enqueue(r, queue, payload, *options):
    return r.execute_command("ENQUEUE", queue, payload, *options)


def lease(r, *queues, count=None, block=None, for_ms=None):
    """LEASE ... FROM queues -> list of task dicts."""
    args = ["LEASE"]
    if count is not None:
        args += ["COUNT", count]
    if block is not None:
        args += ["BLOCK", block]
    if for_ms is not None:
        args += ["FOR", for_ms]
    args += ["FROM", *queues]
    reply = r.execute_command(*args)
    assert isinstance(reply, list), f"LEASE replied {reply!r}"
    return [pairs_to_dict(t) for t in reply]


def lease_one(r, *queues, **kwargs):
    tasks = lease(r, *queues, **kwargs)
    assert len(tasks) == 1, f"expected exactly one task, got {tasks!r}"
    return tasks[0]


def task_info(r, task_id):
    reply = r.execute_command("TASK", task_id)
    return None if reply is None else pairs_to_dict(reply)


def wait_for_lease(r, queue, timeout, **kwargs):
    """Polls a non-blocking LEASE until a task arrives."""
    return wait_until(lambda: (lease(r, queue, **kwargs) or [None])[0], timeout,
                      message=f"a task to become leasable on {queue!r}")


def info_section(server, section):
    """INFO <section> of `server` (a ConveyorServer) as a dict of str -> str, read over a raw
    connection (redis-py's INFO parser turns `a=1,b=2` values into dicts and numbers into
    ints; this keeps the text as sent)."""
    with server.raw(timeout=5.0) as conn:
        text = conn.command("INFO", section)
    assert isinstance(text, bytes), f"INFO {section} replied {text!r}"
    out = {}
    for line in text.decode().splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        out[key] = value
    return out
