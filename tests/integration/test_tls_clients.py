"""`conveyor worker` and the client subcommands over TLS: --connect rediss://...,
--tls-ca, --tls-cert, --tls-key (and CONVEYOR_TLS_*), against the real broker's TLS port
(--tls-port, client certificates required by default).

A task goes in with `conveyor enqueue` over TLS, `conveyor worker --builtin echo` runs it
over TLS, and `conveyor result --wait` reads it over TLS; the worker reconnects over TLS
after a broker restart. A server certificate from another
CA, a missing client certificate and a client certificate from an unknown CA each fail with a
message naming the server and the reason, exit status 1, for the CLI and the worker alike;
the worker gives up at once rather than retrying for --connect-timeout. --tls-* flags without
TLS (neither rediss:// nor --tls) are usage errors (exit 2).

Certificates come from conf/gen-test-certs.sh: one set for the server and the good client,
a second set whose CA signed neither."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (HOST, REPO_ROOT, ConveyorTestCase, conveyor_bin, free_port, task_info,
                     wait_until)

CLI_TIMEOUT = 20.0
GEN_CERTS = os.path.join(REPO_ROOT, "conf", "gen-test-certs.sh")


def make_certs():
    path = tempfile.mkdtemp(prefix="conveyor-tls-it-")
    subprocess.run(["/bin/sh", GEN_CERTS, path], check=True, timeout=60)
    return path


class TlsClientsTestCase(ConveyorTestCase):
    tls_auth_clients = "yes"

    @classmethod
    def setUpClass(cls):
        cls.certs = make_certs()
        cls.other = make_certs()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)
        shutil.rmtree(cls.other, ignore_errors=True)

    start_server = False

    def setUp(self):
        super().setUp()
        self.workdir = tempfile.mkdtemp(prefix="conveyor-tls-clients-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.tls_port = free_port()
        self.server = self.start_conveyor(
            "--tls-port", self.tls_port,
            "--tls-cert", self.cert("server.crt"), "--tls-key", self.cert("server.key"),
            "--tls-ca", self.cert("ca.crt"), "--tls-auth-clients", self.tls_auth_clients,
            "--default-lease-ms", "5000")
        wait_until(self.tls_port_accepts, 10, message=f"TLS port {self.tls_port}")

    def tls_port_accepts(self):
        try:
            with socket.create_connection((HOST, self.tls_port), timeout=0.5):
                return True
        except OSError:
            return False

    def cert(self, name, certs=None):
        return os.path.join(certs or self.certs, name)

    def url(self, host="localhost"):
        return f"rediss://{host}:{self.tls_port}"

    def client_flags(self, ca=None, cert_set=None):
        cert_set = cert_set or self.certs
        return ["--tls-ca", ca or self.cert("ca.crt"),
                "--tls-cert", self.cert("client.crt", cert_set),
                "--tls-key", self.cert("client.key", cert_set)]

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("CONVEYOR_URL", "CONVEYOR_TLS_CA", "CONVEYOR_TLS_CERT",
                            "CONVEYOR_TLS_KEY")}
        env.update(extra)
        return env

    def cli(self, *args, env=None, input=b""):
        return subprocess.run([conveyor_bin(), *[str(a) for a in args]], input=input,
                              capture_output=True, env=env or self.env(), timeout=CLI_TIMEOUT)

    def assertExit(self, proc, status, *stderr_has):
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, status,
                         f"exit {proc.returncode}; stdout {proc.stdout!r}; stderr {err!r}")
        for part in stderr_has:
            self.assertIn(part, err)
        return err

    def worker(self, *args, name="worker", env=None):
        """Starts `conveyor worker <args>` in its own process group; returns (proc, log path)."""
        log_path = os.path.join(self.workdir, f"{name}.log")
        cmd = [conveyor_bin(), "worker", "--status-interval", "0", "--log-level", "debug",
               *[str(a) for a in args]]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=env or self.env())

        def stop():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
        self.addCleanup(stop)
        return proc, log_path

    def read(self, path):
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def worker_failure(self, *args):
        """Runs a worker that must fail to connect; returns its log after it exits 1."""
        start = time.monotonic()
        proc, log = self.worker("--queue", "q", "--builtin", "echo", "--connect-timeout", "20",
                                *args)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.fail(f"worker still running; log:\n{self.read(log)}")
        self.assertEqual(code, 1, self.read(log))
        # Not retried until --connect-timeout: a TLS failure will not fix itself.
        self.assertLess(time.monotonic() - start, 10)
        return self.read(log)


class TlsClientsTest(TlsClientsTestCase):

    def test_enqueue_worker_and_result_over_tls(self):
        p = self.cli("enqueue", "--connect", self.url(), *self.client_flags(), "tls-q",
                     "hello over tls")
        self.assertExit(p, 0)
        task_id = p.stdout.decode().strip()
        self.assertRegex(task_id, r"^\S+$")

        w, log = self.worker("--connect", self.url("127.0.0.1"), *self.client_flags(),
                             "--queue", "tls-q", "--builtin", "echo")
        # The URL and the files from the environment this time.
        env = self.env(CONVEYOR_URL=self.url(), CONVEYOR_TLS_CA=self.cert("ca.crt"),
                       CONVEYOR_TLS_CERT=self.cert("client.crt"),
                       CONVEYOR_TLS_KEY=self.cert("client.key"))
        r = self.cli("result", "--wait", "10s", task_id, env=env)
        self.assertExit(r, 0)
        self.assertEqual(r.stdout, b"hello over tls")
        self.assertIsNone(w.poll(), self.read(log))
        self.assertIn("connected to 127.0.0.1:%d" % self.tls_port, self.read(log))
        # The plaintext port saw the same broker.
        self.assertEqual(task_info(self.server.client(), task_id)["state"], "succeeded")

    def test_worker_reconnects_over_tls_after_a_broker_restart(self):
        w, log = self.worker("--connect", self.url(), *self.client_flags(), "--queue", "r",
                             "--builtin", "echo")
        first = self.cli("enqueue", "--connect", self.url(), *self.client_flags(), "--wait",
                         "10s", "r", "before")
        self.assertExit(first, 0)
        self.server.restart(sig=signal.SIGKILL)
        wait_until(self.tls_port_accepts, 10, message="TLS port after the restart")
        p = self.cli("enqueue", "--connect", self.url(), *self.client_flags(), "--wait", "15s",
                     "r", "after")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"after")
        self.assertIsNone(w.poll(), self.read(log))
        self.assertIn("reconnected", self.read(log))

    def test_enqueue_wait_and_bulk_over_tls(self):
        w, log = self.worker("--connect", self.url(), *self.client_flags(), "--queue", "b",
                             "--builtin", "echo", "--concurrency", "4")
        p = self.cli("enqueue", "--connect", self.url(), *self.client_flags(), "--wait", "10s",
                     "b", "round trip")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"round trip")
        lines = b"".join(b"line %d\n" % i for i in range(500))
        p = self.cli("enqueue", "--connect", self.url(), *self.client_flags(), "--lines", "-",
                     "--print-ids", "b", input=lines)
        self.assertExit(p, 0)
        ids = p.stdout.decode().split()
        self.assertEqual(len(ids), 500)
        r = self.cli("result", "--connect", self.url(), *self.client_flags(), "--wait", "10s",
                     ids[-1])
        self.assertExit(r, 0)
        self.assertEqual(r.stdout, b"line 499")

    def test_tls_flag_with_host_port(self):
        p = self.cli("queues", "--connect", f"127.0.0.1:{self.tls_port}", "--tls",
                     *self.client_flags())
        self.assertExit(p, 0)

    def test_server_certificate_from_another_ca_exits_1(self):
        wrong_ca = self.cert("ca.crt", self.other)
        p = self.cli("enqueue", "--connect", self.url(), *self.client_flags(ca=wrong_ca),
                     "q", "x")
        err = self.assertExit(p, 1, f"conveyor enqueue: cannot connect to localhost:"
                                    f"{self.tls_port}: certificate verify failed: ",
                              wrong_ca)
        self.assertEqual(err.count("\n"), 1, err)  # one line
        log = self.worker_failure("--connect", self.url(), *self.client_flags(ca=wrong_ca))
        self.assertIn("certificate verify failed", log)
        self.assertIn(f"localhost:{self.tls_port}", log)

    def test_certificate_name_mismatch_exits_1(self):
        p = self.cli("queues", "--connect", self.url("127.0.0.1"), *self.client_flags(),
                     "--tls-server-name", "broker.example")
        self.assertExit(p, 1, "certificate verify failed: hostname mismatch", "broker.example")

    def test_missing_client_certificate_exits_1(self):
        ca = ["--tls-ca", self.cert("ca.crt")]
        p = self.cli("enqueue", "--connect", self.url(), *ca, "q", "x")
        self.assertExit(p, 1, f"cannot connect to localhost:{self.tls_port}: ",
                        "client certificate")
        log = self.worker_failure("--connect", self.url(), *ca)
        self.assertIn("client certificate", log)
        # Nothing was enqueued.
        self.assertEqual(self.server.client().execute_command("QLEN", "q"), 0)

    def test_client_certificate_from_an_unknown_ca_exits_1(self):
        p = self.cli("queues", "--connect", self.url(),
                     *self.client_flags(ca=self.cert("ca.crt"), cert_set=self.other))
        self.assertExit(p, 1, f"cannot connect to localhost:{self.tls_port}: ",
                        "rejected the client certificate")

    def test_plaintext_client_on_the_tls_port_and_tls_on_the_plain_port_fail(self):
        p = self.cli("queues", "--connect", f"rediss://{HOST}:{self.server.port}",
                     *self.client_flags())
        self.assertExit(p, 1, f"cannot connect to {HOST}:{self.server.port}: ", "TLS")
        p = self.cli("queues", "--connect", f"{HOST}:{self.tls_port}", "--connect-timeout", "3")
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_unreadable_files_exit_1_naming_the_file(self):
        missing = os.path.join(self.workdir, "nope.crt")
        p = self.cli("queues", "--connect", self.url(), "--tls-ca", missing)
        self.assertExit(p, 1, f"cannot read CA file '{missing}'")
        p = self.cli("queues", "--connect", self.url(), "--tls-cert", self.cert("client.crt"),
                     "--tls-key", self.cert("client.key", self.other))
        self.assertExit(p, 1, "does not match certificate")

    def test_tls_flags_without_tls_are_usage_errors(self):
        plain = f"{HOST}:{self.server.port}"
        p = self.cli("queues", "--connect", plain, "--tls-ca", self.cert("ca.crt"))
        self.assertExit(p, 2, "--tls-ca needs TLS: connect to a rediss:// URL or add --tls")
        p = self.cli("queues", "--connect", self.url(), "--tls-cert", self.cert("client.crt"))
        self.assertExit(p, 2, "needs its key (--tls-key)")
        w = subprocess.run([conveyor_bin(), "worker", "--connect", plain, "--queue", "q",
                            "--builtin", "echo", "--tls-key", self.cert("client.key")],
                           capture_output=True, timeout=CLI_TIMEOUT, env=self.env())
        self.assertEqual(w.returncode, 2, w.stderr)
        self.assertIn(b"--tls-key needs TLS", w.stderr)
        # Exported CONVEYOR_TLS_* do not disturb a plaintext connection.
        env = self.env(CONVEYOR_TLS_CA=self.cert("ca.crt"))
        self.assertExit(self.cli("queues", "--connect", plain, env=env), 0)

    def test_help_lists_the_tls_options(self):
        for args in (["enqueue", "--help"], ["result", "--help"], ["worker", "--help"]):
            p = self.cli(*args)
            self.assertExit(p, 0)
            out = p.stdout.decode()
            for flag in ("--tls-ca", "--tls-cert", "--tls-key", "--tls ", "rediss://"):
                self.assertIn(flag, out, args)


class OptionalClientAuthTest(TlsClientsTestCase):
    tls_auth_clients = "optional"

    def test_no_client_certificate_is_accepted_when_optional(self):
        p = self.cli("enqueue", "--connect", self.url(), "--tls-ca", self.cert("ca.crt"),
                     "q", "x")
        self.assertExit(p, 0)


if __name__ == "__main__":
    unittest.main()
