"""A stand-in for systemd's notification socket (sd_notify(3)): an AF_UNIX datagram socket
bound by the test, named by the NOTIFY_SOCKET value a server is started with."""

import contextlib
import os
import socket
import tempfile
import time


class NotifySocket:
    """Binds a datagram socket: a path in a temporary directory, or an abstract name
    (NOTIFY_SOCKET "@name") when `abstract` is true. `env_value` is what NOTIFY_SOCKET
    must hold to reach it."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dir = None
        if abstract:
            name = f"conveyor-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self.dir = tempfile.TemporaryDirectory(prefix="conveyor-notify-")
            path = os.path.join(self.dir.name, "notify")
            self.sock.bind(path)
            self.env_value = path
        self.messages = []

    def receive_until(self, field, timeout):
        """Reads datagrams until one holds the line `field` (e.g. "READY=1"); returns that
        datagram's lines as a dict, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(data)
            lines = data.split("\n")
            if field in lines:
                return dict(line.split("=", 1) for line in lines if "=" in line)
        return None

    def close(self):
        self.sock.close()
        if self.dir:
            self.dir.cleanup()


@contextlib.contextmanager
def environment(**values):
    """Sets (or, for None, unsets) environment variables for the processes started inside."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
