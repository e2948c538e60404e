"""`conveyor server` arguments as redis-server users expect them (docs/commands.md "Server
arguments"): a config file given first, exact flag names with "did you mean", config-file
errors naming file and line, ports that cannot be opened naming the flag to change, one
duration syntax for every time flag (server, CLI and worker), and check-data refusing a
directory a running server holds."""

import os
import shutil
import socket
import tempfile
import unittest

from harness import (HOST, ConveyorTestCase, enqueue, free_port, info_section, lease_one,
                     run_conveyor)

FORMS = "(500ms, 30s, 1.5s, 5m, 1h, 2d; a bare number is"


class ArgsCase(ConveyorTestCase):
    start_server = False

    def workdir(self):
        path = tempfile.mkdtemp(prefix="conveyor-args-")
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def config(self, text):
        path = os.path.join(self.workdir(), "conveyor.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def refused(self, *args):
        """Runs `conveyor server <args>` (on a free port, no AMQP, a scratch data directory,
        after `args`, so that a config file given first stays first) and returns its output;
        it must exit 1 at once."""
        code, out = run_conveyor("server", *args, "--port", free_port(), "--amqp-port", "0",
                                 "--data-dir", os.path.join(self.workdir(), "data"),
                                 timeout=10)
        self.assertEqual(code, 1, out)
        return out

    def assertNoSourcePath(self, out):
        for marker in (".hpp", ".cpp", "/usr/include", "boost::"):
            self.assertNotIn(marker, out)


class ConfigFileFirstTest(ArgsCase):

    def test_a_config_file_given_first_is_read(self):
        path = self.config("default-lease-ms 4321\ndefault-retries 0\n")
        self.server = self.start_conveyor(config_file=path)
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        self.assertEqual(int(t["lease_ms"]), 4321, "default-lease-ms from the file")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e"), "dead", "default-retries 0")
        self.assertEqual(info_section(self.server, "server")["config_file"], path)

    def test_a_flag_beats_the_file_given_first(self):
        path = self.config("default-lease-ms 4321\ndefault-retries 0\n")
        self.server = self.start_conveyor("--default-lease-ms", "2345", config_file=path)
        r = self.client()
        enqueue(r, "q", "p")
        t = lease_one(r, "q")
        self.assertEqual(int(t["lease_ms"]), 2345, "the flag wins")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "e"), "dead",
                         "default-retries 0 from the file still applies")

    def test_an_argument_after_the_flags_is_refused(self):
        out = self.refused("--log-level", "info", "extra.conf")
        self.assertIn("conveyor server: unexpected argument 'extra.conf' (a config file goes "
                      "first: conveyor server <file> [--flag value ...])", out)

    def test_two_config_files_are_refused(self):
        first = self.config("default-retries 1\n")
        second = self.config("default-retries 2\n")
        out = self.refused(first, "--config", second)
        self.assertIn(f"conveyor server: two config files ('{first}' and --config '{second}'): "
                      "give one", out)

    def test_a_missing_config_file_gives_the_os_reason(self):
        path = os.path.join(self.workdir(), "absent.conf")
        out = self.refused(path)
        self.assertIn(f"conveyor server: cannot open config file '{path}': No such file or "
                      "directory", out)


class ExactFlagsTest(ArgsCase):

    def test_misspelled_flags_are_refused_with_did_you_mean(self):
        cases = [
            (("--requirepas", "secret"),
             "unknown option '--requirepas' (did you mean '--requirepass'?)"),
            (("--data", "/tmp/elsewhere"), "unknown option '--data' (did you mean '--data-dir'?)"),
            (("--prot", "7206"),
             "unknown option '--prot' (did you mean '--port' or '--protected-mode'?)"),
            (("--prot=7206",),
             "unknown option '--prot' (did you mean '--port' or '--protected-mode'?)"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                out = self.refused(*args)
                self.assertIn(f"conveyor server: {message}\nTry 'conveyor server --help'.", out)

    def test_an_unknown_flag_far_from_any_is_refused_without_a_guess(self):
        out = self.refused("--frobnicate", "1")
        self.assertIn("conveyor server: unknown option '--frobnicate'\n", out)
        self.assertNotIn("did you mean", out)


class ConfigFileErrorsTest(ArgsCase):

    def test_an_unknown_key_names_the_file_and_line(self):
        path = self.config("port 7000\n# a comment\nappendonly yes\n")
        out = self.refused(path)
        self.assertIn(f"conveyor server: {path}:3: unknown setting 'appendonly'", out)

    def test_a_misspelled_key_gets_did_you_mean(self):
        path = self.config("requirepas secret\n")
        out = self.refused("--config", path)
        self.assertIn(f"conveyor server: {path}:1: unknown setting 'requirepas' (did you mean "
                      "'requirepass'?)", out)

    def test_a_bad_value_names_the_file_and_line(self):
        path = self.config("default-retries 1\nfsync sometimes\n")
        out = self.refused(path)
        self.assertIn(f"conveyor server: {path}:2: fsync must be always, everysec or no "
                      "(got 'sometimes')", out)
        path = self.config("log-level verbose\n")
        out = self.refused(path)
        self.assertIn(f"conveyor server: {path}:1: log-level must be trace, debug, info, warn, "
                      "error, critical or off (got 'verbose')", out)
        path = self.config("\nidle-timeout soon\n")
        out = self.refused(path)
        self.assertIn(f"conveyor server: {path}:2: idle-timeout: 'soon' is not a duration "
                      f"{FORMS} seconds)", out)

    def test_a_key_set_twice_names_both_lines(self):
        path = self.config("default-retries 1\ndefault-retries 2\n")
        out = self.refused(path)
        self.assertIn(f"conveyor server: {path}:2: default-retries is already set on line 1", out)


class PortInUseTest(ArgsCase):

    def occupied_port(self):
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind((HOST, 0))
        s.listen()
        return s.getsockname()[1]

    def start_refused(self, *args):
        code, out = run_conveyor("server", "--bind", HOST, "--data-dir",
                                 os.path.join(self.workdir(), "data"), *args, timeout=10)
        self.assertEqual(code, 1, out)
        self.assertNoSourcePath(out)
        return out

    def test_resp_port_in_use_names_the_flag(self):
        port = self.occupied_port()
        out = self.start_refused("--port", port, "--amqp-port", "0")
        self.assertIn(f"Could not create server TCP listening socket {HOST}:{port} (--port): "
                      "bind: Address already in use; another process is listening on it: stop "
                      "it, or start with another --port (--port 0 turns the RESP port off)", out)

    def test_amqp_port_in_use_names_the_flag(self):
        port = self.occupied_port()
        out = self.start_refused("--port", free_port(), "--amqp-port", port)
        self.assertIn(f"Could not create server TCP listening socket {HOST}:{port} "
                      "(--amqp-port): bind: Address already in use; another process is "
                      "listening on it: stop it, or start with another --amqp-port "
                      "(--amqp-port 0 turns AMQP off)", out)

    def test_the_amqp_default_is_5673(self):
        code, out = run_conveyor("server", "--help")
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"--amqp-port PORT \(=5673\)")


class DurationFlagsTest(ArgsCase):

    def test_server_flags_take_suffixes_and_keep_their_bare_units(self):
        self.server = self.start_conveyor("--default-lease-ms", "1.5s", "--tcp-keepalive", "2m",
                                          "--amqp-consumer-timeout", "1h",
                                          "--idle-timeout", "1d", "--amqp-heartbeat", "30")
        r = self.client()
        enqueue(r, "q", "p")
        self.assertEqual(int(lease_one(r, "q")["lease_ms"]), 1500)
        self.assertEqual(r.config_get("tcp-keepalive"), {"tcp-keepalive": "120"})
        self.assertEqual(r.config_get("amqp-consumer-timeout"),
                         {"amqp-consumer-timeout": "3600000"})
        self.assertEqual(r.config_get("amqp-heartbeat"), {"amqp-heartbeat": "30"})
        self.assertEqual(r.config_get("idle-timeout"), {"idle-timeout": "1d"})

    def test_server_durations_that_do_not_parse_are_refused(self):
        out = self.refused("--idle-timeout", "10x")
        self.assertIn(f"conveyor server: --idle-timeout: '10x' is not a duration {FORMS} "
                      "seconds)", out)
        out = self.refused("--default-lease-ms", "1.5")
        self.assertIn("conveyor server: --default-lease-ms: '1.5' is not a whole number of "
                      "milliseconds", out)
        out = self.refused("--result-ttl-ms", "36501d")
        self.assertIn("conveyor server: --result-ttl-ms is out of range (max 3153600000000 ms), "
                      "got '36501d'", out)

    def test_cli_time_flags_take_suffixes(self):
        self.server = self.start_conveyor()
        url = f"{HOST}:{self.server.port}"
        code, out = run_conveyor("enqueue", "q", "p", "--delay", "1h", "--connect", url)
        self.assertEqual(code, 0, out)
        r = self.client()
        self.assertEqual(r.execute_command("TASK", out.strip())[7], "delayed")
        code, out = run_conveyor("enqueue", "q", "p", "--wait", "0.3s", "--connect", url)
        self.assertEqual(code, 1, out)
        self.assertIn("did not finish within 300 ms", out)
        code, out = run_conveyor("enqueue", "q", "p", "--ttl", "soon", "--connect", url)
        self.assertEqual(code, 2, out)
        self.assertIn(f"conveyor enqueue: --ttl: 'soon' is not a duration {FORMS} "
                      "milliseconds)", out)
        code, out = run_conveyor("queues", "--connect-timeout", "1.5m", "--connect", url)
        self.assertEqual(code, 0, out)
        code, out = run_conveyor("queues", "--connect-timeout", "5x", "--connect", url)
        self.assertEqual(code, 2, out)
        self.assertIn(f"conveyor queues: --connect-timeout: '5x' is not a duration {FORMS} "
                      "seconds)", out)

    def test_worker_time_flags_take_suffixes(self):
        code, out = run_conveyor("worker", "--queue", "q", "--builtin", "echo",
                                 "--shutdown-timeout", "2x")
        self.assertEqual(code, 2, out)
        self.assertIn(f"conveyor worker: --shutdown-timeout: '2x' is not a duration {FORMS} "
                      "seconds)", out)
        # A broker nobody listens on: the worker gives up after --connect-timeout (1.5 s).
        code, out = run_conveyor("worker", "--queue", "q", "--builtin", "echo",
                                 "--connect", f"{HOST}:{free_port()}", "--connect-timeout",
                                 "1500ms", timeout=10)
        self.assertEqual(code, 1, out)
        self.assertIn("within 1500 ms", out)


class CheckDataOnALiveServerTest(ConveyorTestCase):

    def check_data(self, *args):
        return run_conveyor("check-data", *args, self.server.data_dir)

    def test_check_data_refuses_a_live_directory_and_runs_with_force(self):
        enqueue(self.client(), "q", "p")
        lock = os.path.join(self.server.data_dir, "LOCK")
        for args, verb in (((), "check"), (("--repair",), "repair")):
            code, out = self.check_data(*args)
            self.assertEqual(code, 2, out)
            self.assertIn(f"conveyor check-data: {self.server.data_dir} is in use by a running "
                          f"conveyor server ({lock} is locked): stop the server first, or add "
                          f"--force to {verb} it anyway", out)
        code, out = self.check_data("--force")
        self.assertEqual(code, 0, out)
        self.assertIn("going on because of --force", out)
        self.assertIn("clean: 1 segment", out)
        self.assertEqual(self.server.stop(), 0)
        code, out = self.check_data()
        self.assertEqual(code, 0, out)
        self.assertNotIn("in use", out)


if __name__ == "__main__":
    unittest.main()
