"""The `conveyor server` command line: --help, --config files, the start-up log line, and clean
exit (code 0) on SIGTERM and SIGINT."""

import os
import shutil
import signal
import tempfile
import time
import unittest

from harness import (REPO_ROOT, ConveyorTestCase, ServerStartError, enqueue, free_port,
                     lease_one, run_conveyor)

DOCUMENTED_FLAGS = ("--bind", "--port", "--data-dir", "--log-level", "--default-lease-ms",
                    "--default-retries", "--max-payload", "--config", "--help")


class HelpTest(ConveyorTestCase):
    start_server = False

    def test_help_lists_every_flag_and_exits_zero(self):
        code, text = run_conveyor("server", "--help")
        self.assertEqual(code, 0, text)
        for flag in DOCUMENTED_FLAGS:
            self.assertIn(flag, text, f"--help does not mention {flag}")

    def test_unknown_flag_is_refused_with_nonzero_exit(self):
        workdir = tempfile.mkdtemp(prefix="conveyor-cli-")
        self.addCleanup(shutil.rmtree, workdir, True)
        code, text = run_conveyor("server", "--port", free_port(), "--data-dir", workdir,
                                  "--no-such-flag", "1", timeout=5.0)
        self.assertIsNotNone(code, f"still running with an unknown flag:\n{text}")
        self.assertNotEqual(code, 0)
        self.assertIn("no-such-flag", text)


class ConfigFileTest(ConveyorTestCase):
    start_server = False

    def write_config(self, workdir, text):
        path = os.path.join(workdir, "conveyor.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def make_workdir(self):
        workdir = tempfile.mkdtemp(prefix="conveyor-conf-")
        self.addCleanup(shutil.rmtree, workdir, True)
        return workdir

    def test_config_file_sets_port_data_dir_and_broker_defaults(self):
        workdir = self.make_workdir()
        data_dir = os.path.join(workdir, "from-config")
        os.makedirs(data_dir)
        for attempt in range(5):  # the port is in the file: retry on a bind collision
            port = free_port()
            path = self.write_config(workdir, (
                "# Conveyor test configuration\n"
                "bind 127.0.0.1\n"
                f"port {port}\n"
                "\n"
                f"data-dir {data_dir}\n"
                "default-lease-ms 4321\n"
                "   # indented comment\n"
                "default-retries 0\n"))
            try:
                self.server = self.start_conveyor("--config", path, use_default_args=False,
                                                  port=port, workdir=workdir)
                break
            except ServerStartError:
                if attempt == 4:
                    raise
        r = self.client()
        self.assertEqual(r.config_get("port"), {"port": str(port)})
        enqueue(r, "conf_q", "p")
        t = lease_one(r, "conf_q")
        self.assertEqual(int(t["lease_ms"]), 4321, "default-lease-ms from the file")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e"), "dead",
                         "default-retries 0 from the file")
        self.assertIn(data_dir, self.server.log_text(), "start-up log names the data dir")
        self.assertEqual(self.server.stop(), 0)

    def test_flags_win_over_the_config_file(self):
        workdir = self.make_workdir()
        path = self.write_config(workdir, "default-lease-ms 4321\ndefault-retries 0\n")
        self.server = self.start_conveyor("--config", path, "--default-lease-ms", "2345")
        r = self.client()
        enqueue(r, "conf_q", "p")
        t = lease_one(r, "conf_q")
        self.assertEqual(int(t["lease_ms"]), 2345, "the flag wins")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e"), "dead",
                         "default-retries 0 from the file still applies")

    def test_shipped_example_config_is_accepted(self):
        shipped = os.path.join(REPO_ROOT, "conf", "conveyor.conf")
        self.assertTrue(os.path.exists(shipped), f"{shipped} is missing")
        # Its port and data dir are overridden by the flags the harness adds.
        self.server = self.start_conveyor("--config", shipped)
        self.assertTrue(self.client().ping())

    def test_bad_config_file_is_refused(self):
        workdir = self.make_workdir()
        path = self.write_config(workdir, "no-such-setting 12\n")
        code, text = run_conveyor("server", "--config", path, "--port", free_port(),
                                  "--data-dir", workdir, timeout=5.0)
        self.assertIsNotNone(code, f"still running with a bad config file:\n{text}")
        self.assertNotEqual(code, 0)
        self.assertIn("no-such-setting", text)

    def test_missing_config_file_is_refused(self):
        workdir = self.make_workdir()
        code, text = run_conveyor("server", "--config", os.path.join(workdir, "absent.conf"),
                                  "--port", free_port(), "--data-dir", workdir, timeout=5.0)
        self.assertIsNotNone(code, f"still running without its config file:\n{text}")
        self.assertNotEqual(code, 0)


class ShutdownTest(ConveyorTestCase):

    def test_start_up_log_line_names_version_port_and_data_dir(self):
        log = self.server.log_text()
        lines = [l for l in log.splitlines()
                 if str(self.server.port) in l and self.server.data_dir in l]
        self.assertTrue(lines, f"no start-up line with port and data dir in:\n{log}")
        self.assertRegex(lines[0], r"\d+\.\d+\.\d+", "start-up line lacks the version")

    def test_sigterm_exits_zero(self):
        self.assertTrue(self.client().ping())
        start = time.monotonic()
        self.assertEqual(self.server.stop(signal.SIGTERM, timeout=5.0), 0)
        self.assertLess(time.monotonic() - start, 5.0)

    def test_sigint_exits_zero(self):
        self.assertTrue(self.client().ping())
        self.assertEqual(self.server.stop(signal.SIGINT, timeout=5.0), 0)

    def test_sigterm_with_blocked_and_idle_clients_exits_zero_promptly(self):
        idle = self.raw()
        idle.command("PING")
        blocked = self.raw(timeout=10)
        blocked.send(b"*5\r\n$5\r\nLEASE\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$4\r\nFROM\r\n$1\r\nq\r\n")
        waiter = self.raw(timeout=10)
        task_id = waiter.command("ENQUEUE", "other", "p")
        waiter.send(b"*4\r\n$6\r\nRESULT\r\n$%d\r\n%s\r\n$4\r\nWAIT\r\n$1\r\n0\r\n"
                    % (len(task_id), task_id))
        time.sleep(0.2)
        start = time.monotonic()
        self.assertEqual(self.server.stop(signal.SIGTERM, timeout=5.0), 0)
        self.assertLess(time.monotonic() - start, 5.0)

    def test_sigterm_during_traffic_exits_zero(self):
        r = self.client()
        pipe = r.pipeline(transaction=False)
        for i in range(2000):
            pipe.lpush("traffic", f"item-{i}")
        pipe.execute()
        self.assertEqual(self.server.stop(signal.SIGTERM, timeout=5.0), 0)


if __name__ == "__main__":
    unittest.main()
