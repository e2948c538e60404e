"""Fail-stop loops (docs/reliability.md promise 6): an exception out of the core thread's
deadline or housekeeping loop stops the server with status 1 and a clear log line, as a
failed fsync does, instead of serving on with leases that never expire. The fault is
injected with `DEBUG LOOP-FAULT` (server started with --enable-debug-command yes); a restart
recovers every acknowledged change."""

import unittest

from harness import ConveyorTestCase


class FailStopLoopTest(ConveyorTestCase):
    server_args = ("--enable-debug-command", "yes")
    case_timeout = 60.0

    def assert_loop_fault_stops(self, loop, name):
        c = self.client()
        task = c.execute_command("ENQUEUE", "jobs", "before")
        self.assertEqual(c.execute_command("DEBUG", "LOOP-FAULT", loop), "OK")
        self.assertEqual(self.server.wait_exit(10.0), 1, "the server must exit with status 1")
        log = self.server.log_text()
        self.assertIn(f"{name} failed: fault injected by DEBUG LOOP-FAULT", log)
        self.assertIn(f"the {name} stopped; stopping the server", log)
        c.close()
        self.server = self.start_conveyor(workdir=self.server.workdir)
        c2 = self.server.client()
        self.addCleanup(c2.close)
        reply = c2.execute_command("TASK", task)
        self.assertEqual(dict(zip(reply[::2], reply[1::2]))["state"], "queued")

    def test_deadline_loop_exception_stops_the_server(self):
        self.assert_loop_fault_stops("DEADLINE", "deadline loop")

    def test_housekeeping_loop_exception_stops_the_server(self):
        self.assert_loop_fault_stops("HOUSEKEEPING", "housekeeping loop")

    def test_unknown_loop_is_refused(self):
        c = self.client()
        with self.assertRaises(Exception) as e:
            c.execute_command("DEBUG", "LOOP-FAULT", "NOPE")
        self.assertIn("unknown LOOP-FAULT 'NOPE'", str(e.exception))
        self.assertTrue(c.ping())


if __name__ == "__main__":
    unittest.main()
