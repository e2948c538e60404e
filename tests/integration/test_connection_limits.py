"""Hostile and careless clients against the connection limits (docs/limits.md;
docs/reliability.md T11, T12): the limits before authentication (Redis 7's wording), --max-args,
--query-buffer-limit, --max-clients, --idle-timeout, --output-buffer-limit (a consumer that never
reads is dropped and its leases go back at once), and 10,000 unauthenticated connections each
declaring a 512 MB bulk."""

import resource
import selectors
import socket
import time
import unittest

from harness import (HOST, ConveyorTestCase, RawConnection, encode_command, lease, run_conveyor,
                     wait_until)

PASSWORD = "secret"


def hostile_conn(port, data, timeout=5.0):
    conn = RawConnection(HOST, port, timeout)
    conn.send(data)
    return conn


class PreAuthLimitsTest(ConveyorTestCase):
    """Before AUTH: 10 arguments of 16 KiB, 64 KiB per request; then an error and a close."""

    server_args = ("--requirepass", PASSWORD)

    def refused(self, sent, expected):
        conn = self.raw()
        conn.send(sent)
        self.assertEqual(conn.read_until_closed(1.0), expected, f"after sending {sent!r}")
        self.assertServerAlive()

    def test_more_than_ten_arguments_is_refused_and_closed(self):
        self.refused(b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n")

    def test_bulk_over_16k_is_refused_and_closed(self):
        self.refused(b"*1\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n")

    def test_declared_512mb_bulk_is_refused_at_the_count(self):
        self.refused(b"*1048576\r\n$536870912\r\n",
                     b"-ERR Protocol error: unauthenticated multibulk length\r\n")

    def test_whole_request_over_64k_is_refused(self):
        sent = b"*5\r\n" + b"".join(b"$16000\r\n" + b"x" * 16000 + b"\r\n" for _ in range(5))
        self.refused(sent, b"-ERR Protocol error: unauthenticated request length\r\n")

    def test_small_requests_before_auth_get_noauth_not_a_close(self):
        conn = self.raw()
        conn.send(encode_command("ECHO", "x" * 16384))
        self.assertErrorPrefix(conn.read_reply(), "NOAUTH")
        conn.send(b"PING\r\n")
        self.assertEqual(conn.read_reply(), "PONG")

    def test_after_auth_normal_limits_apply_from_the_next_request(self):
        conn = self.raw()
        big = "y" * 100000
        # AUTH and the big request in one packet: the decoder switches between them.
        conn.send(encode_command("AUTH", PASSWORD) + encode_command("ECHO", big) +
                  encode_command("ECHO", "z" * 20000))
        self.assertEqual(conn.read_reply(), "OK")
        self.assertEqual(conn.read_reply(), big.encode())
        self.assertEqual(conn.read_reply(), b"z" * 20000)

    def test_wrong_password_keeps_the_tight_limits(self):
        conn = self.raw()
        conn.send(encode_command("AUTH", "wrong"))
        self.assertErrorPrefix(conn.read_reply(), "WRONGPASS")
        conn.send(b"*11\r\n")
        self.assertEqual(conn.read_until_closed(1.0),
                         b"-ERR Protocol error: unauthenticated multibulk length\r\n")


class RequestLimitsTest(ConveyorTestCase):
    server_args = ("--max-args", "5", "--query-buffer-limit", "100000")

    def test_more_than_max_args_is_invalid(self):
        conn = self.raw()
        conn.send(encode_command("ECHO", "a", "b", "c", "d", "e"))
        self.assertEqual(conn.read_until_closed(1.0),
                         b"-ERR Protocol error: invalid multibulk length\r\n")
        self.assertServerAlive()

    def test_max_args_itself_is_accepted(self):
        r = self.client()
        self.assertEqual(r.execute_command("LPUSH", "q", "a", "b", "c"), 3)

    def test_request_over_query_buffer_limit_is_refused_at_its_header(self):
        conn = self.raw()
        conn.send(b"*2\r\n$4\r\nECHO\r\n$200000\r\n")  # the bytes never need to come
        self.assertEqual(conn.read_until_closed(1.0),
                         b"-ERR Protocol error: request exceeds query-buffer-limit\r\n")
        self.assertServerAlive()

    def test_requests_under_the_limit_pipeline_freely(self):
        conn = self.raw()
        conn.send(encode_command("ECHO", "x" * 90000) * 20)
        for _ in range(20):
            self.assertEqual(len(conn.read_reply()), 90000)


class MaxClientsTest(ConveyorTestCase):
    server_args = ("--max-clients", "5")

    def test_one_over_the_limit_is_refused_and_closed(self):
        held = []
        for _ in range(5):
            conn = self.raw()
            conn.send(b"PING\r\n")
            self.assertEqual(conn.read_reply(), "PONG")
            held.append(conn)
        extra = self.raw()
        self.assertEqual(extra.read_until_closed(1.0), b"-ERR max number of clients reached\r\n")
        # One leaves, one more may come in.
        held.pop().close()

        def admitted():
            with self.server.raw(timeout=1.0) as probe:
                probe.send(b"PING\r\n")
                try:
                    return probe.read_reply() == "PONG"
                except (AssertionError, OSError):
                    return False
        wait_until(admitted, 3.0, interval=0.05, message="a slot frees up")
        for conn in held:
            conn.send(b"PING\r\n")
            self.assertEqual(conn.read_reply(), "PONG")
        self.assertIn("max number of clients reached", self.server.log_text())


class IdleTimeoutTest(ConveyorTestCase):
    server_args = ("--idle-timeout", "1")

    def test_idle_client_is_closed(self):
        conn = self.raw()
        conn.send(b"PING\r\n")
        self.assertEqual(conn.read_reply(), "PONG")
        start = time.monotonic()
        self.assertEqual(conn.read_until_closed(3.0), b"")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertIn("--idle-timeout", self.server.log_text())

    def test_half_sent_request_does_not_count_as_activity(self):
        conn = self.raw()
        conn.send(b"*2\r\n$4\r\nECHO\r\n$10\r\nabc")  # a slowloris request, never finished
        self.assertEqual(conn.read_until_closed(3.0), b"")

    def test_active_client_is_kept(self):
        conn = self.raw()
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            conn.send(b"PING\r\n")
            self.assertEqual(conn.read_reply(), "PONG")
            time.sleep(0.3)

    def test_blocked_client_is_not_idle(self):
        blocked = self.raw(timeout=10.0)
        blocked.send(encode_command("LEASE", "BLOCK", "0", "FROM", "q"))
        time.sleep(2.5)
        self.client().execute_command("ENQUEUE", "q", "late")
        reply = blocked.read_reply()
        self.assertEqual(len(reply), 1)
        self.assertIn(b"late", reply[0])
        blpop = self.raw(timeout=10.0)
        blpop.send(encode_command("BLPOP", "list", "0"))
        time.sleep(2.5)
        self.client().execute_command("RPUSH", "list", "v")
        self.assertEqual(blpop.read_reply(), [b"list", b"v"])

    def test_milliseconds_are_accepted(self):
        server = self.start_conveyor("--idle-timeout", "300ms")
        with server.raw() as conn:
            self.assertEqual(conn.read_until_closed(2.0), b"")

    def test_bad_duration_is_refused_at_start(self):
        code, out = run_conveyor("server", "--idle-timeout", "10x", "--data-dir",
                                 self.server.data_dir + "-bad", "--port", "0")
        self.assertEqual(code, 1)
        self.assertIn("--idle-timeout", out)


class OutputBufferLimitTest(ConveyorTestCase):
    """A consumer that pipelines LEASEs and never reads: past the limit it is dropped, and
    the tasks it leased are at once leaseable by others (not after their lease runs out)."""

    server_args = ("--output-buffer-limit", str(1024 * 1024))
    case_timeout = 60.0
    TASKS = 300
    PAYLOAD = 100 * 1024  # 30 MB of replies: more than every socket buffer on the way

    def fill_queue(self):
        r = self.client()
        pipe = r.pipeline(transaction=False)
        for i in range(self.TASKS):
            pipe.execute_command("ENQUEUE", "jobs", f"{i:06d}" + "p" * self.PAYLOAD)
        pipe.execute()
        self.assertEqual(r.execute_command("QLEN", "jobs"), self.TASKS)
        return r

    def non_reader(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        sock.settimeout(10.0)
        sock.connect((HOST, self.server.port))
        self.addCleanup(sock.close)
        return sock

    def test_non_reading_consumer_is_dropped_and_its_leases_go_back(self):
        r = self.fill_queue()
        sock = self.non_reader()
        sock.sendall(encode_command("LEASE", "FOR", "600000", "FROM", "jobs") * self.TASKS)
        # The server closes it: our unread data then ends in a reset or EOF once drained.
        wait_until(lambda: "output buffer limits" in self.server.log_text(), 10.0,
                   message="the server logs the output-buffer disconnect")
        # Leases were 10 minutes long: only the release on disconnect brings them back now.
        wait_until(lambda: r.execute_command("QLEN", "jobs") == self.TASKS, 2.0,
                   message="every task leased by the dropped client is ready again")
        other = self.client()
        got = []
        for _ in range(self.TASKS // 5):  # 0.5 MB per reply, under the limit
            got += lease(other, "jobs", count=5)
        self.assertEqual(len(got), self.TASKS)
        info = other.info("clients")
        self.assertEqual(info["connected_clients"], 2)
        self.assertServerAlive()

    def test_echo_flood_without_reading_is_dropped(self):
        sock = self.non_reader()
        big = "e" * (256 * 1024)
        try:
            for _ in range(200):  # 50 MB of replies
                sock.sendall(encode_command("ECHO", big))
        except OSError:
            pass  # closed by the server while we were still sending: that is the point
        wait_until(lambda: "output buffer limits" in self.server.log_text(), 10.0,
                   message="the server logs the output-buffer disconnect")
        self.assertServerAlive()

    def test_slow_but_steady_reader_is_not_dropped(self):
        r = self.client()
        r.execute_command("ENQUEUE", "jobs", "x")
        conn = self.raw(timeout=10.0)
        conn.send(encode_command("ECHO", "s" * 1000) * 500)  # 0.5 MB, under the limit
        for _ in range(500):
            self.assertEqual(len(conn.read_reply()), 1000)
        self.assertNotIn("output buffer limits", self.server.log_text())


class UnauthenticatedFloodTest(ConveyorTestCase):
    """docs/reliability.md T11: 10,000 unauthenticated connections each declaring a 512 MB bulk
    cost under 64 KiB each, and other clients keep working."""

    CONNECTIONS = 10000
    server_args = ("--requirepass", PASSWORD, "--max-clients", "11000")
    case_timeout = 90.0

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.CONNECTIONS + 200
        # Per process: ours for the client sockets; the server raises its own toward the
        # same hard limit for --max-clients.
        if hard != resource.RLIM_INFINITY and hard < wanted:
            self.skipTest(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        super().setUp()

    def connect_all(self):
        socks = []
        for i in range(self.CONNECTIONS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5.0)
            s.connect((HOST, self.server.port))
            s.setblocking(False)
            socks.append(s)
            if i % 1000 == 999:
                self.assert_others_work()
        return socks

    def assert_others_work(self):
        r = self.server.client(timeout=5.0, password=PASSWORD)
        try:
            self.assertTrue(r.ping())
            self.assertEqual(r.execute_command("ECHO", "alive"), "alive")
        finally:
            r.close()

    def test_ten_thousand_hostile_connections_are_cheap_and_refused(self):
        self.assert_others_work()
        before = self.server.rss_bytes()
        socks = self.connect_all()
        self.addCleanup(lambda: [s.close() for s in socks])
        wait_until(lambda: self.server_clients() >= self.CONNECTIONS, 20.0, interval=0.1,
                   message="the server holds every connection")
        held = self.server.rss_bytes()
        hostile = b"*1048576\r\n$536870912\r\n"
        for s in socks:
            s.send(hostile)
        expected = b"-ERR Protocol error: unauthenticated multibulk length\r\n"
        replies = self.collect_until_closed(socks, 30.0)
        after = self.server.rss_bytes()
        wrong = [r for r in replies if r != expected]
        self.assertEqual(len(replies), self.CONNECTIONS)
        self.assertEqual(wrong[:3], [], f"{len(wrong)} connections got something else")
        self.assert_others_work()
        per_conn_held = (held - before) / self.CONNECTIONS
        per_conn_after = (after - before) / self.CONNECTIONS
        print(f"\nRSS before {before >> 10} KiB, with {self.CONNECTIONS} connections "
              f"{held >> 10} KiB ({per_conn_held:.0f} B each), after the refusals "
              f"{after >> 10} KiB ({per_conn_after:.0f} B each)")
        self.assertLess(per_conn_held, 64 * 1024)
        self.assertLess(per_conn_after, 64 * 1024)

    def server_clients(self):
        r = self.server.client(timeout=5.0, password=PASSWORD)
        try:
            return int(r.info("clients")["connected_clients"])
        finally:
            r.close()

    def collect_until_closed(self, socks, timeout):
        sel = selectors.DefaultSelector()
        data = {}
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
            data[s] = b""
        done = []
        end = time.monotonic() + timeout
        while len(done) < len(socks) and time.monotonic() < end:
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                try:
                    chunk = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    data[s] += chunk
                    continue
                sel.unregister(s)
                done.append(data[s])
        sel.close()
        return done


if __name__ == "__main__":
    unittest.main()
