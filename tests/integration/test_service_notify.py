"""The server tells systemd it is ready (Type=notify in conf/conveyor.service): READY=1 to
$NOTIFY_SOCKET once it answers clients, STOPPING=1 as it shuts down; without NOTIFY_SOCKET,
or with one nobody listens on, it serves as usual. The socket is a real AF_UNIX datagram
socket bound by the test (notify_socket.py)."""

import signal
import unittest

from harness import ConveyorServer
from notify_socket import NotifySocket, environment


class ServiceNotifyTest(unittest.TestCase):
    def start_server(self, notify_socket_value):
        server = ConveyorServer()
        self.addCleanup(server.cleanup)
        with environment(NOTIFY_SOCKET=notify_socket_value):
            server.start()
        return server

    def check_ready_then_stopping(self, notify):
        self.addCleanup(notify.close)
        server = self.start_server(notify.env_value)
        ready = notify.receive_until("READY=1", timeout=10)
        self.assertIsNotNone(ready, f"no READY=1; got {notify.messages}")
        self.assertEqual(ready["MAINPID"], str(server.proc.pid))
        # READY=1 is sent once listeners are up: the server answers at that point.
        self.assertTrue(server.client().ping())
        self.assertEqual(server.stop(signal.SIGTERM, timeout=10), 0)
        self.assertIsNotNone(notify.receive_until("STOPPING=1", timeout=5),
                             f"no STOPPING=1; got {notify.messages}")

    def test_ready_and_stopping_sent_to_a_socket_path(self):
        self.check_ready_then_stopping(NotifySocket(abstract=False))

    def test_ready_and_stopping_sent_to_an_abstract_socket(self):
        self.check_ready_then_stopping(NotifySocket(abstract=True))

    def test_serves_without_notify_socket(self):
        server = self.start_server(None)
        self.assertTrue(server.client().ping())
        self.assertNotIn("NOTIFY_SOCKET", server.log_text())

    def test_unreachable_notify_socket_is_logged_and_serving_goes_on(self):
        server = self.start_server("/nonexistent/conveyor-notify")
        self.assertTrue(server.client().ping())
        self.assertIn("cannot notify the service manager at /nonexistent/conveyor-notify",
                      server.log_text())
        self.assertEqual(server.stop(signal.SIGTERM, timeout=10), 0)


if __name__ == "__main__":
    unittest.main()
