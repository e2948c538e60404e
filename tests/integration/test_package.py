"""The Debian package (`make package`, cmake/packaging.cmake): cpack builds it from the
already built binary into a temporary directory; its control fields, files and maintainer
scripts are checked with dpkg-deb; it is extracted (dpkg-deb -x, no root needed) and the
extracted binary serves with the extracted /etc/conveyor/conveyor.conf (data dir and port
overridden by flags), telling a notify socket it is ready as under systemd; the unit file
passes `systemd-analyze verify` when that is installed. Installing with apt (root) is
scripts/package-smoke.sh, not part of make test."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import ConveyorServer, conveyor_bin
from notify_socket import NotifySocket, environment

ETC_CONF = "etc/conveyor/conveyor.conf"
UNIT = "usr/lib/systemd/system/conveyor.service"


class PackagedServer(ConveyorServer):
    """A server run from the extracted package with its packaged config file."""

    def __init__(self, root):
        self.root = root
        super().__init__(extra_args=["--config", os.path.join(root, ETC_CONF)])

    def command_line(self, port):
        cmd = super().command_line(port)
        # Flags win over the file: the free port, own data dir and --amqp-port 0 replace
        # 6380, /var/lib/conveyor and the AMQP port the file names.
        cmd[0] = os.path.join(self.root, "usr/bin/conveyor")
        return cmd


def run(*args, timeout=120):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=timeout)


@unittest.skipUnless(shutil.which("dpkg-deb") and shutil.which("cpack"), "needs dpkg-deb, cpack")
class DebianPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        build_dir = os.path.dirname(os.path.abspath(conveyor_bin()))
        config = os.path.join(build_dir, "CPackConfig.cmake")
        if not os.path.exists(config):
            raise unittest.SkipTest(f"{config} missing: configure with cmake first")
        cls.tmp = tempfile.mkdtemp(prefix="conveyor-pkg-")
        out = os.path.join(cls.tmp, "out")
        run("cpack", "-G", "DEB", "--config", config, "-B", out)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(out, debs[0])
        cls.root = os.path.join(cls.tmp, "root")
        run("dpkg-deb", "-x", cls.deb, cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return run("dpkg-deb", "-f", self.deb, name).stdout.strip()

    def test_file_name_and_control_fields(self):
        arch = run("dpkg", "--print-architecture").stdout.strip()
        version = self.field("Version")
        self.assertEqual(os.path.basename(self.deb), f"conveyor_{version}_{arch}.deb")
        self.assertEqual(self.field("Package"), "conveyor")
        self.assertEqual(self.field("Architecture"), arch)
        version_line = run(os.path.join(self.root, "usr/bin/conveyor"), "--version").stdout
        self.assertIn(version, version_line)
        depends = self.field("Depends")
        # Every shared library the binary links comes from a package it depends on.
        for package in ("passwd", "libc6", "libstdc++6", "libssl3", "libboost-json1.81.0",
                        "libboost-program-options1.81.0", "libfmt9"):
            self.assertRegex(depends, rf"(^|, ){re.escape(package)}( |,|$)")
        self.assertIn("libspdlog1.10", depends)

    def test_contents(self):
        listing = run("dpkg-deb", "-c", self.deb).stdout
        paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
        for path in ("/usr/bin/conveyor", "/etc/conveyor/conveyor.conf",
                     "/usr/lib/systemd/system/conveyor.service",
                     "/usr/share/doc/conveyor/install.md", "/usr/share/doc/conveyor/README.md",
                     "/usr/share/doc/conveyor/examples/send_email.py"):
            self.assertIn(path, paths)
        # The client library's headers and archives are not part of the service package.
        self.assertFalse([p for p in paths if p.startswith("/usr/include")], paths)

    def test_maintainer_scripts_and_conffiles(self):
        control = os.path.join(self.tmp, "control")
        run("dpkg-deb", "-e", self.deb, control)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/conveyor/conveyor.conf"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(control, script)
            self.assertTrue(os.access(path, os.X_OK), script)
            run("sh", "-n", path)  # parses as POSIX sh

    def test_packaged_config_and_unit_point_at_installed_paths(self):
        with open(os.path.join(self.root, ETC_CONF)) as f:
            conf = f.read()
        self.assertRegex(conf, r"\ndata-dir /var/lib/conveyor\n")
        with open(os.path.join(self.root, UNIT)) as f:
            unit = f.read()
        self.assertIn("\nExecStart=/usr/bin/conveyor server --config "
                      "/etc/conveyor/conveyor.conf\n", unit)
        for line in ("Type=notify", "User=conveyor", "StateDirectory=conveyor",
                     "Restart=on-failure", "LimitNOFILE=65536"):
            self.assertIn(f"\n{line}\n", unit)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    def test_unit_file_verifies(self):
        # verify checks that ExecStart's binary exists: point it at the extracted one.
        with open(os.path.join(self.root, UNIT)) as f:
            unit = f.read().replace("ExecStart=/usr/bin/conveyor",
                                    f"ExecStart={self.root}/usr/bin/conveyor")
        unit_dir = os.path.join(self.tmp, "unit")
        os.makedirs(unit_dir, exist_ok=True)
        path = os.path.join(unit_dir, "conveyor.service")
        with open(path, "w") as f:
            f.write(unit)
        result = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                                text=True, timeout=60)
        # Outside a booted systemd (a container), verify also reports units it cannot load
        # around this one; only lines about conveyor.service itself count.
        own = [line for line in (result.stdout + result.stderr).splitlines()
               if line.startswith("conveyor.service:") and "sysinit.target" not in line
               and "/bin/kill" not in line]
        self.assertEqual(own, [])

    def test_extracted_binary_serves_with_packaged_config(self):
        notify = NotifySocket()
        self.addCleanup(notify.close)
        server = PackagedServer(self.root)
        self.addCleanup(server.cleanup)
        with environment(NOTIFY_SOCKET=notify.env_value):
            server.start()
        self.assertIsNotNone(notify.receive_until("READY=1", timeout=10), notify.messages)
        client = server.client()
        self.assertTrue(client.ping())
        task_id = client.execute_command("ENQUEUE", "emails", '{"to":"ada@example.com"}')
        self.assertEqual(client.execute_command("QLEN", "emails"), 1)
        self.assertIn(task_id, server.redis_cli("TASK", task_id).stdout)
        self.assertEqual(server.stop(signal.SIGTERM, timeout=10), 0)
        self.assertIn("data dir " + server.data_dir, server.log_text())


if __name__ == "__main__":
    unittest.main()
