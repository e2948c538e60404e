"""--tcp-keepalive (Redis's tcp-keepalive): accepted connections on the RESP and AMQP ports get
SO_KEEPALIVE with the first probe after the configured idle seconds, so a client whose host
vanished is found and its connection (and a blocked LEASE) ends. 0 turns it off.

The server side of each connection is read from /proc/net/tcp: its `tr` field is 2 while the
keepalive timer runs, and `tm->when` is the time left on it in clock ticks."""

import os
import socket
import tempfile
import unittest

import pika

from harness import ConveyorTestCase, run_conveyor, wait_until

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_side_timer(server_port, client_port):
    """(timer kind, seconds left) of the server's end of the connection to `client_port`,
    or None when /proc/net/tcp has no such connection."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            remote_port = int(fields[2].split(":")[1], 16)
            if (local_port, remote_port) != (server_port, client_port):
                continue
            kind, when = fields[5].split(":")
            return int(kind, 16), int(when, 16) / CLOCK_TICKS
    return None


def idle_timer(server_port, client_port):
    """The server end's timer once nothing is in flight (a retransmit timer may run for a
    moment while the last reply is unacknowledged)."""
    def settled():
        timer = server_side_timer(server_port, client_port)
        return timer if timer is not None and timer[0] != 1 else None
    return wait_until(settled, 5.0, message="the connection's timer to settle")


class TcpKeepaliveTest(ConveyorTestCase):

    def resp_connection(self, server):
        conn = server.raw()
        self.addCleanup(conn.close)
        self.assertEqual(conn.command("PING"), "PONG")
        return conn.sock.getsockname()[1]

    def assert_keepalive(self, server_port, client_port, seconds):
        kind, left = idle_timer(server_port, client_port)
        self.assertEqual(kind, 2, "the server's end has no keepalive timer")
        self.assertLessEqual(left, seconds)
        self.assertGreater(left, seconds - 3)

    def test_default_is_300_seconds_as_redis(self):
        self.assert_keepalive(self.server.port, self.resp_connection(self.server), 300)
        self.assertEqual(self.client().config_get("tcp-keepalive"), {"tcp-keepalive": "300"})

    def test_configured_seconds_apply_to_resp_and_amqp_connections(self):
        server = self.start_conveyor("--tcp-keepalive", "20", amqp=True)
        self.assert_keepalive(server.port, self.resp_connection(server), 20)
        params = pika.ConnectionParameters(host="127.0.0.1", port=server.amqp_port,
                                           heartbeat=0, blocked_connection_timeout=5)
        amqp = pika.BlockingConnection(params)
        self.addCleanup(amqp.close)
        amqp.channel()
        amqp_client_port = amqp._impl._transport._sock.getsockname()[1]
        self.assert_keepalive(server.amqp_port, amqp_client_port, 20)

    def test_zero_turns_keepalive_off(self):
        server = self.start_conveyor("--tcp-keepalive", "0")
        kind, _ = idle_timer(server.port, self.resp_connection(server))
        self.assertEqual(kind, 0, "keepalive must be off with --tcp-keepalive 0")

    def test_config_file_key(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("tcp-keepalive 40\n")
        self.addCleanup(os.remove, f.name)
        server = self.start_conveyor("--config", f.name)
        self.assert_keepalive(server.port, self.resp_connection(server), 40)

    def test_out_of_range_is_refused_at_start(self):
        for value in ("-1", "32768"):
            code, out = run_conveyor("server", "--tcp-keepalive", value, "--port", "0",
                                     "--amqp-port", "0", "--data-dir",
                                     tempfile.mkdtemp(prefix="conveyor-ka-"))
            self.assertEqual(code, 1, out)
            self.assertIn("--tcp-keepalive must be 0-32767", out)


if __name__ == "__main__":
    unittest.main()
