"""RESP over TLS (docs/tls.md; docs/reliability.md promise 7, T12 and T14): redis-py and redis-cli
with client certificates, --tls-auth-clients yes|optional|no, TLS only with --port 0, a
plaintext client and a stalled handshake on the TLS port, TLS 1.1 refused, certificates
reloaded on SIGHUP without dropping connections, a large payload through TLS."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import redis

from harness import (HOST, REPO_ROOT, ConveyorServer, ConveyorTestCase, free_port, lease_one,
                     run_conveyor, wait_until)

GEN_CERTS = os.path.join(REPO_ROOT, "conf", "gen-test-certs.sh")
TLS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ssl.SSLError,
              OSError)


def make_certs(directory):
    subprocess.run([GEN_CERTS, directory], check=True, timeout=60)
    return directory


class TlsServerCase(ConveyorTestCase):
    """Each case: a server with a plain port and a TLS port, certificates in a fresh directory
    (`live`, the files the server reads) made by conf/gen-test-certs.sh."""

    auth_clients = "yes"
    extra_tls_args = ()
    start_server = False

    @classmethod
    def setUpClass(cls):
        cls.cert_root = tempfile.mkdtemp(prefix="conveyor-tls-")
        cls.first = make_certs(os.path.join(cls.cert_root, "first"))
        cls.second = make_certs(os.path.join(cls.cert_root, "second"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.cert_root, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.live = tempfile.mkdtemp(prefix="conveyor-tls-live-")
        self.addCleanup(shutil.rmtree, self.live, True)
        self.install_certs(self.first)
        self.tls_port = free_port()
        self.server = self.start_conveyor(*self.tls_args(self.tls_port), *self.extra_tls_args)

    def install_certs(self, source):
        for name in ("ca.crt", "server.crt", "server.key"):
            shutil.copy(os.path.join(source, name), os.path.join(self.live, name + ".tmp"))
            os.replace(os.path.join(self.live, name + ".tmp"), os.path.join(self.live, name))

    def tls_args(self, port):
        return ("--tls-port", port, "--tls-cert", os.path.join(self.live, "server.crt"),
                "--tls-key", os.path.join(self.live, "server.key"),
                "--tls-ca", os.path.join(self.live, "ca.crt"),
                "--tls-auth-clients", self.auth_clients)

    def tls_client(self, certs=None, with_cert=True, ca_from=None, port=None, **kwargs):
        certs = certs or self.first
        ca = os.path.join(ca_from or certs, "ca.crt")
        args = dict(host=HOST, port=port or self.tls_port, ssl=True, ssl_ca_certs=ca,
                    ssl_cert_reqs="required", socket_timeout=10, socket_connect_timeout=5,
                    decode_responses=True)
        if with_cert:
            args.update(ssl_certfile=os.path.join(certs, "client.crt"),
                        ssl_keyfile=os.path.join(certs, "client.key"))
        args.update(kwargs)
        r = redis.Redis(**args)
        self.addCleanup(r.close)
        return r

    def assertRefused(self, client):
        # TLS 1.3 tells the client about a refused certificate only after its handshake,
        # so the refusal shows at the first command.
        with self.assertRaises(TLS_ERRORS):
            client.ping()

    def assertTlsAlive(self):
        self.assertTrue(self.tls_client().ping())


class TlsBasicsTest(TlsServerCase):

    def test_redis_py_with_client_certificate(self):
        r = self.tls_client()
        self.assertTrue(r.ping())
        task_id = r.execute_command("ENQUEUE", "emails", "hello")
        task = lease_one(r, "emails")
        self.assertEqual(task["id"], task_id)
        self.assertEqual(r.execute_command("ACK", task["lease"], "sent"), 1)
        self.assertEqual(r.execute_command("RESULT", task_id), "sent")

    def test_redis_cli_with_client_certificate(self):
        base = ["redis-cli", "-h", HOST, "-p", str(self.tls_port), "--tls",
                "--cacert", os.path.join(self.first, "ca.crt"),
                "--cert", os.path.join(self.first, "client.crt"),
                "--key", os.path.join(self.first, "client.key")]
        help_text = subprocess.run(["redis-cli", "--help"], capture_output=True, text=True)
        if "--tls" not in help_text.stdout + help_text.stderr:
            self.skipTest("this redis-cli was built without TLS")
        done = subprocess.run(base + ["PING"], capture_output=True, text=True, timeout=20)
        self.assertEqual(done.stdout.strip(), "PONG", done.stderr)
        done = subprocess.run(base + ["LPUSH", "q", "a", "b"], capture_output=True, text=True,
                              timeout=20)
        self.assertEqual(done.stdout.strip(), "2", done.stderr)

    def test_same_commands_and_state_behind_both_ports(self):
        plain = self.client()
        task_id = plain.execute_command("ENQUEUE", "jobs", "across")
        r = self.tls_client()
        self.assertEqual(lease_one(r, "jobs")["id"], task_id)
        self.assertEqual(r.execute_command("QLEN", "jobs"), 0)
        self.assertEqual(r.info("clients")["connected_clients"], 2)

    def test_client_without_certificate_is_refused(self):
        self.assertRefused(self.tls_client(with_cert=False))
        wait_until(lambda: "TLS handshake failed" in self.server.log_text(), 2.0,
                   message="the refusal is logged")
        self.assertTlsAlive()

    def test_client_certificate_from_another_ca_is_refused(self):
        self.assertRefused(self.tls_client(certs=self.second, ca_from=self.first))
        self.assertTlsAlive()

    def test_big_payload_round_trips(self):
        r = self.tls_client(decode_responses=False)
        payload = os.urandom(5 * 1024 * 1024)
        task_id = r.execute_command("ENQUEUE", "big", payload)
        reply = r.execute_command("LEASE", "FROM", "big")
        fields = dict(zip(reply[0][::2], reply[0][1::2]))
        self.assertEqual(fields[b"id"], task_id)
        self.assertEqual(fields[b"payload"], payload)
        self.assertEqual(r.execute_command("ECHO", payload), payload)

    def test_pipelined_and_blocking_commands_over_tls(self):
        r = self.tls_client()
        pipe = r.pipeline(transaction=False)
        for i in range(1000):
            pipe.execute_command("LPUSH", "list", str(i))
        self.assertEqual(pipe.execute()[-1], 1000)
        blocked = self.tls_client()
        waiter = self.tls_client()
        self.assertEqual(waiter.execute_command("BLPOP", "empty", "0.2"), None)
        r.execute_command("ENQUEUE", "later", "x")
        self.assertEqual(lease_one(blocked, "later", block=1000)["payload"], "x")

    def test_plaintext_client_on_tls_port_is_refused_cleanly(self):
        with socket.create_connection((HOST, self.tls_port), timeout=5) as s:
            s.sendall(b"PING\r\n")
            s.settimeout(3.0)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
        self.assertNotIn(b"PONG", data)
        wait_until(lambda: "TLS handshake failed" in self.server.log_text(), 2.0,
                   message="the refusal is logged")
        self.assertTrue(self.server.is_running())
        self.assertServerAlive()
        self.assertTlsAlive()

    def test_tls_1_1_is_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(self.first, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.first, "client.crt"),
                            os.path.join(self.first, "client.key"))
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as e:
            self.skipTest(f"the local OpenSSL cannot be set to TLS 1.1: {e}")
        with socket.create_connection((HOST, self.tls_port), timeout=5) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"PING\r\n")
                    got = s.recv(64)
                self.fail(f"a TLS 1.1 handshake succeeded and got {got!r}")
            except ssl.SSLError as e:
                if "NO_PROTOCOLS_AVAILABLE" in str(e) or "no protocols available" in str(e):
                    self.skipTest(f"the local OpenSSL refuses to offer TLS 1.1 itself: {e}")
                # The server saw a ClientHello and refused it.
        wait_until(lambda: "TLS handshake failed" in self.server.log_text(), 2.0,
                   message="the server logs the refused TLS 1.1 handshake")
        self.assertTlsAlive()

    def test_sighup_reloads_certificates_without_dropping_connections(self):
        old = self.tls_client()
        self.assertTrue(old.ping())
        first_ca_only = ssl.create_default_context(cafile=os.path.join(self.first, "ca.crt"))
        self.install_certs(self.second)
        self.server.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS certificates reloaded" in self.server.log_text(), 5.0,
                   message="the reload is logged")
        # The connection made before the reload goes on.
        self.assertTrue(old.ping())
        self.assertEqual(old.execute_command("ECHO", "still here"), "still here")
        # New connections get the new certificate: the old CA no longer verifies it...
        with socket.create_connection((HOST, self.tls_port), timeout=5) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                first_ca_only.wrap_socket(raw, server_hostname="localhost")
        # ... and a client of the new CA gets in.
        self.assertTrue(self.tls_client(certs=self.second).ping())

    def test_failed_reload_keeps_the_old_certificates(self):
        with open(os.path.join(self.live, "server.crt"), "w") as f:
            f.write("not a certificate\n")
        self.server.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS reload failed" in self.server.log_text(), 5.0,
                   message="the failed reload is logged")
        self.assertTlsAlive()


class TlsHandshakeTimeoutTest(TlsServerCase):
    extra_tls_args = ("--handshake-timeout", "1s")

    def test_stalled_handshake_is_closed_after_the_timeout(self):
        with socket.create_connection((HOST, self.tls_port), timeout=5) as s:
            start = time.monotonic()
            s.settimeout(5.0)
            try:
                self.assertEqual(s.recv(64), b"")
            except ConnectionResetError:
                pass
            took = time.monotonic() - start
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3.0)
        self.assertIn("TLS handshake not done within 1000 ms", self.server.log_text())
        self.assertTlsAlive()

    def test_slow_but_finished_handshake_is_served(self):
        self.assertTrue(self.tls_client().ping())
        time.sleep(1.5)  # the timeout is for the handshake only
        self.assertTrue(self.tls_client().ping())


class TlsOptionalClientsTest(TlsServerCase):
    auth_clients = "optional"

    def test_client_without_certificate_is_accepted(self):
        self.assertTrue(self.tls_client(with_cert=False).ping())

    def test_client_with_certificate_is_accepted(self):
        self.assertTrue(self.tls_client().ping())

    def test_certificate_from_another_ca_is_still_refused(self):
        self.assertRefused(self.tls_client(certs=self.second, ca_from=self.first))


class TlsNoClientCertsTest(TlsServerCase):
    auth_clients = "no"

    def test_client_without_certificate_is_accepted(self):
        self.assertTrue(self.tls_client(with_cert=False).ping())

    def test_client_with_certificate_is_accepted(self):
        self.assertTrue(self.tls_client().ping())


class TlsOnlyServer(ConveyorServer):
    """--port 0: the harness's plain PING cannot tell it is ready; a TLS PING can."""

    def __init__(self, certs, **kwargs):
        super().__init__(**kwargs)
        self.certs = certs

    def _wait_ready(self):
        deadline = time.monotonic() + self.READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = redis.Redis(host=HOST, port=self.port, ssl=True, socket_timeout=1,
                                ssl_ca_certs=os.path.join(self.certs, "ca.crt"),
                                ssl_certfile=os.path.join(self.certs, "client.crt"),
                                ssl_keyfile=os.path.join(self.certs, "client.key"))
                try:
                    if r.ping():
                        return True
                finally:
                    r.close()
            except TLS_ERRORS:
                pass
            time.sleep(0.05)
        return False


class TlsOnlyTest(TlsServerCase):

    def setUp(self):
        # No server from TlsServerCase: this one listens on TLS alone.
        ConveyorTestCase.setUp(self)
        self.live = tempfile.mkdtemp(prefix="conveyor-tls-live-")
        self.addCleanup(shutil.rmtree, self.live, True)
        self.install_certs(self.first)

    def test_port_0_leaves_tls_as_the_only_way_in(self):
        server = TlsOnlyServer(self.first, use_default_args=False)
        tls_port = free_port()
        server.extra_args = ["--port", "0", "--bind", HOST, "--data-dir", server.data_dir,
                             *[str(a) for a in self.tls_args(tls_port)]]
        self._servers.append(server)
        self.addCleanup(server.kill_group)
        server.fixed_port = tls_port
        server.start()
        self.tls_port = tls_port
        self.assertTrue(self.tls_client().ping())
        self.assertIn("resp off", server.log_text())

    def test_tls_port_without_certificate_refuses_to_start(self):
        code, out = run_conveyor("server", "--port", "0", "--tls-port", free_port(),
                                 "--data-dir", os.path.join(self.live, "data"))
        self.assertEqual(code, 1)
        self.assertIn("--tls-cert", out)

    def test_unreadable_key_refuses_to_start(self):
        code, out = run_conveyor("server", "--port", "0", "--tls-port", free_port(),
                                 "--data-dir", os.path.join(self.live, "data"),
                                 "--tls-cert", os.path.join(self.live, "server.crt"),
                                 "--tls-key", os.path.join(self.live, "missing.key"),
                                 "--tls-auth-clients", "no")
        self.assertEqual(code, 1)
        self.assertIn("missing.key", out)


if __name__ == "__main__":
    unittest.main()
