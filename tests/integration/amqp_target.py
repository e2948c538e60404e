"""Where the AMQP integration tests run (test_amqp_*.py), and a tiny raw AMQP 0-9-1 client.

CONVEYOR_AMQP_TARGET chooses the broker:
  unset / "conveyor"  a fresh `conveyor server --amqp-port <free>` per test case (harness.py);
                      this is what CI runs.
  "rabbitmq"          one private rabbitmq-server per test module (needs the Debian package
                      rabbitmq-server, which CI does not install): its own node name, ports,
                      epmd, mnesia and log directories in a temporary directory, never the
                      system service. It validates the tests themselves against the reference
                      broker. Tests that need the RESP side or Conveyor's own behaviour are
                      skipped there (`conveyor_only`).

A test case (AmqpTestCase) gets `host`, `port`, `amqp_url`, `resp` (a redis-py client with
decode_responses=True, or None on RabbitMQ) and `server` (the ConveyorServer or None), plus
`connect()` (a pika BlockingConnection closed at teardown) and `qname()` (a queue name unique
to the case, so cases sharing one RabbitMQ never see each other's queues).
"""

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from harness import HOST, ConveyorTestCase, free_port, wait_until

TARGET = (os.environ.get("CONVEYOR_AMQP_TARGET") or "conveyor").strip().lower()
if TARGET not in ("conveyor", "rabbitmq"):
    raise RuntimeError(f"CONVEYOR_AMQP_TARGET must be 'conveyor' or 'rabbitmq', not {TARGET!r}")
ON_RABBITMQ = TARGET == "rabbitmq"


def conveyor_only(reason):
    """Skips a test (or class) on RabbitMQ: it needs the RESP side or Conveyor's flags."""
    return unittest.skipIf(ON_RABBITMQ, f"Conveyor only: {reason}")


def require_programs(*names):
    """Skips when a program is missing; CI installs them (scripts/install-deps.sh), so
    there the skip cannot happen silently: CONVEYOR_REQUIRE_AMQP_TOOLS=1 turns it into a
    failure."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing and os.environ.get("CONVEYOR_REQUIRE_AMQP_TOOLS") == "1":
        raise RuntimeError(f"missing programs: {missing}")
    return unittest.skipIf(bool(missing), f"not installed: {', '.join(missing)} "
                                          f"(Debian package amqp-tools)")


# ---- a private RabbitMQ ------------------------------------------------------------------

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies, even by kill -9 or the
    hard watchdog (os._exit skips atexit)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RabbitMQBroker:
    READY_TIMEOUT = 60.0

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="conveyor-rabbitmq-")
        self.log_path = os.path.join(self.workdir, "rabbitmq.log")
        self.host = HOST
        self.port = None
        self.proc = None
        self.epmd = None

    def start(self):
        if not os.access(RABBITMQ_SERVER, os.X_OK):
            raise unittest.SkipTest("CONVEYOR_AMQP_TARGET=rabbitmq needs rabbitmq-server")
        d = self.workdir
        self.port = free_port()
        epmd_port, dist_port = free_port(), free_port()
        node = f"rabbit-test-{self.port}@localhost"
        for sub in ("mnesia", "log"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
            # guest may connect from 127.0.0.1 anyway; the disk alarm must not block
            # publishers on a small test disk.
            f.write("loopback_users = none\ndisk_free_limit.absolute = 1\n")
        env = dict(os.environ, HOME=d, ERL_EPMD_PORT=str(epmd_port),
                   RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_NODE_IP_ADDRESS=HOST,
                   RABBITMQ_DIST_PORT=str(dist_port), RABBITMQ_NODENAME=node,
                   RABBITMQ_MNESIA_BASE=os.path.join(d, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(d, "log"), RABBITMQ_LOGS="-",
                   RABBITMQ_CONFIG_FILE=os.path.join(d, "rabbitmq.conf"),
                   RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(d, "advanced.config"),
                   RABBITMQ_CONF_ENV_FILE=os.path.join(d, "rabbitmq-env.conf"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(d, "enabled_plugins"),
                   RABBITMQ_PID_FILE=os.path.join(d, "pid"))
        log = open(self.log_path, "ab")
        # Our own epmd on a private port, in the foreground: it is ours to stop, and the
        # system's epmd (if any) is left alone.
        self.epmd = subprocess.Popen(["epmd", "-port", str(epmd_port)], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        # RABBITMQ_ALLOW_INPUT makes the script exec erl (no proxy shell), so the process
        # we start (and whose death signal is set) is beam itself; -noinput keeps the
        # Erlang shell off stdin.
        env["RABBITMQ_ALLOW_INPUT"] = "1"
        env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-noinput"
        self.proc = subprocess.Popen([RABBITMQ_SERVER], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=d, env=env,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + self.READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if "Server startup complete" in self.log_text():
                return self
            time.sleep(0.1)
        text = self.log_text()
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not start on port {self.port}:\n{text[-5000:]}")

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill_group(self):
        for p in (self.proc, self.epmd):
            if p is None:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)

    def stop(self):
        """SIGTERM (beam stops the node cleanly), SIGKILL after 10 s; then epmd."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.kill_group()
        shutil.rmtree(self.workdir, ignore_errors=True)


_rabbit = None


def shared_rabbitmq():
    """The module's RabbitMQ, started on first use (again after the watchdog killed it)."""
    global _rabbit
    if _rabbit is None or _rabbit.proc.poll() is not None:
        if _rabbit is not None:
            _rabbit.stop()
        _rabbit = RabbitMQBroker().start()
    return _rabbit


@atexit.register
def _stop_rabbitmq():
    global _rabbit
    if _rabbit is not None:
        _rabbit.stop()
        _rabbit = None


# ---- the test case base ------------------------------------------------------------------

class AmqpTestCase(ConveyorTestCase):
    """One broker per case on Conveyor (started with `conveyor_args` and --amqp-port), the
    module's shared RabbitMQ otherwise. The harness watchdog applies to both."""

    start_server = False
    conveyor_args = ()
    case_timeout = 30.0

    def setUp(self):
        super().setUp()
        self.host = HOST
        if ON_RABBITMQ:
            self.broker = shared_rabbitmq()
            self.server = None
            self.resp = None
            self.port = self.broker.port
        else:
            self.server = self.start_conveyor(*self.conveyor_args, amqp=True)
            self.broker = self.server
            self.resp = self.client()
            self.port = self.server.amqp_port
        self.amqp_url = f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    def _on_watchdog(self):
        if not ON_RABBITMQ:
            return super()._on_watchdog()
        self._watchdog_fired = True
        sys.stderr.write(f"\nWATCHDOG: {self.id()} exceeded {self.case_timeout}s; "
                         f"killing RabbitMQ (the next case starts another)\n")
        if _rabbit is not None:
            sys.stderr.write(_rabbit.log_text()[-20000:])
            _rabbit.kill_group()

    # ---- helpers ---------------------------------------------------------------------

    def qname(self, suffix="q"):
        return f"t.{self._testMethodName[5:40]}.{suffix}.{uuid.uuid4().hex[:8]}"

    def params(self, **kwargs):
        import pika
        kwargs.setdefault("blocked_connection_timeout", 20)
        kwargs.setdefault("socket_timeout", 10)
        kwargs.setdefault("stack_timeout", 15)
        kwargs.setdefault("connection_attempts", 1)
        return pika.ConnectionParameters(self.host, self.port, **kwargs)

    def connect(self, **kwargs):
        import pika
        conn = pika.BlockingConnection(self.params(**kwargs))
        self.addCleanup(self._close_quietly, conn)
        return conn

    @staticmethod
    def _close_quietly(conn):
        with contextlib.suppress(Exception):
            if conn.is_open:
                conn.close()


# ---- a raw AMQP 0-9-1 client, for byte-level tests ---------------------------------------

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = b"\xce"
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!I", len(b)) + b


def frame(kind, channel, payload, end=FRAME_END):
    return struct.pack("!BHI", kind, channel, len(payload)) + payload + end


def method_frame(channel, class_id, method_id, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack("!HH", class_id, method_id) + args)


def read_shortstr(buf, pos):
    n = buf[pos]
    return buf[pos + 1:pos + 1 + n].decode("utf-8", "replace"), pos + 1 + n


class RawAmqp:
    """A plain socket speaking AMQP by hand: handshake (PLAIN guest/guest), channel.open,
    and frames in and out. read_method() skips heartbeats."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        self.buf += chunk

    def read_exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_frame(self):
        kind, channel, size = struct.unpack("!BHI", self.read_exactly(7))
        payload = self.read_exactly(size)
        end = self.read_exactly(1)
        assert end == FRAME_END, f"bad frame end {end!r}"
        return kind, channel, payload

    def read_method(self):
        """(channel, class_id, method_id, arguments) of the next method frame; heartbeats
        are skipped, any other frame type is returned as (channel, kind, None, payload)."""
        while True:
            kind, channel, payload = self.read_frame()
            if kind == FRAME_HEARTBEAT:
                continue
            if kind != FRAME_METHOD:
                return channel, kind, None, payload
            class_id, method_id = struct.unpack("!HH", payload[:4])
            return channel, class_id, method_id, payload[4:]

    def expect_method(self, class_id, method_id):
        channel, c, m, args = self.read_method()
        assert (c, m) == (class_id, method_id), \
            f"expected method {class_id}.{method_id}, got {c}.{m} {args!r}"
        return channel, args

    def handshake(self, heartbeat=0, frame_max=131072, channel_max=2047,
                  user="guest", password="guest"):
        self.send(PROTOCOL_HEADER)
        self.expect_method(10, 10)  # connection.start
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send(method_frame(0, 10, 11, struct.pack("!I", 0) + shortstr("PLAIN") +
                               longstr(response) + shortstr("en_US")))
        _, tune = self.expect_method(10, 30)  # connection.tune
        self.tune = struct.unpack("!HIH", tune)
        self.send(method_frame(0, 10, 31, struct.pack("!HIH", channel_max, frame_max,
                                                      heartbeat)))
        self.send(method_frame(0, 10, 40, shortstr("/") + shortstr("") + b"\x00"))
        self.expect_method(10, 41)  # open-ok
        return self

    def channel_open(self, channel=1):
        self.send(method_frame(channel, 20, 10, shortstr("")))
        ch, _ = self.expect_method(20, 11)
        assert ch == channel
        return channel

    def read_connection_close(self):
        """Reads until Connection.Close; returns (reply_code, reply_text, class, method)."""
        while True:
            _, c, m, args = self.read_method()
            if (c, m) == (10, 50):
                code = struct.unpack("!H", args[:2])[0]
                text, pos = read_shortstr(args, 2)
                cls, meth = struct.unpack("!HH", args[pos:pos + 4])
                return code, text, cls, meth

    def read_until_closed(self, deadline_s):
        """All bytes until the broker closes the TCP connection (AssertionError when it is
        still open after deadline_s)."""
        data, self.buf = self.buf, b""
        end = time.monotonic() + deadline_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {deadline_s}s; got "
                                     f"{data[:200]!r}")
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
