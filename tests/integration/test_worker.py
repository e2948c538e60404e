"""`conveyor worker` end to end with --builtin handlers: success, failure and
dead-lettering, time limits, kill -9 of a worker mid-task, warm and cold shutdown, a broker
restart under a running worker, cancellation of a running task, an unreachable broker.

Each worker is a real `conveyor worker` process in its own process group, its log in a file
printed when a case fails; cleanup kills the group whatever happens. The broker runs with
--default-lease-ms 1500, so the worker extends leases every 500 ms (and learns of a CANCEL
within that) and a dead worker's task is redelivered within 1.5 s."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import (HOST, ConveyorTestCase, conveyor_bin, enqueue, free_port,
                     free_port_outside_ephemeral_range, info_section, run_conveyor, task_info,
                     wait_until)

LEASE_MS = 1500


class WorkerProcess:
    """One `conveyor worker` process in its own process group, logging to a file."""

    def __init__(self, port, args, workdir, name):
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.cmd = [conveyor_bin(), "worker", "--connect", f"{HOST}:{port}",
                    "--status-interval", "1", "--log-level", "debug", *[str(a) for a in args]]
        with open(self.log_path, "ab") as log:
            log.write(f"=== {' '.join(self.cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Exit code, or None when still running after `timeout` s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_group(self):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class CuttableProxy:
    """A TCP proxy to the broker whose connections can all be cut at once (a network cut
    without a broker restart); it keeps accepting new ones."""

    def __init__(self, target_port):
        self.target = (HOST, target_port)
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets = []
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self):
        with self.lock:
            victims, self.sockets = self.sockets, []
            self.cuts += 1
        for s in victims:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self):
        self.listener.close()
        self.cut()


class WorkerTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", LEASE_MS)
    case_timeout = 60.0

    def setUp(self):
        self._workers = []
        super().setUp()
        self.r = self.client()

    def _print_log(self, server):
        super()._print_log(server)
        for w in getattr(self, "_workers", []):
            sys.stderr.write(f"\n----- worker log ({w.log_path}) -----\n")
            sys.stderr.write(w.log_text()[-20000:])
            sys.stderr.write("\n----- end of worker log -----\n")

    def start_worker(self, *args, server=None):
        server = server or self.server
        w = WorkerProcess(server.port, args, server.workdir, f"worker{len(self._workers)}")
        self._workers.append(w)
        self.addCleanup(w.kill_group)
        return w

    def stop_worker(self, w, timeout=10.0):
        """SIGTERM (warm shutdown); asserts a clean exit 0."""
        w.signal(signal.SIGTERM)
        code = w.wait(timeout)
        self.assertEqual(code, 0, f"worker did not exit 0 after SIGTERM:\n{w.log_text()}")

    def task(self, task_id):
        return task_info(self.r, task_id)

    def wait_state(self, task_id, state, timeout=10.0):
        return wait_until(lambda: (t := self.task(task_id)) and t["state"] == state and t,
                          timeout, message=f"task {task_id} to be {state} "
                                           f"(now {self.task(task_id)})")

    def leased_count(self, queue, server=None):
        line = info_section(server or self.server, "queues").get(queue, "leased=0")
        return int(dict(kv.split("=") for kv in line.split(","))["leased"])

    def result(self, task_id, wait_ms=15000):
        return self.r.execute_command("RESULT", task_id, "WAIT", wait_ms)

    # ---- outcomes -------------------------------------------------------------------------

    def test_echo_acks_with_the_payload(self):
        w = self.start_worker("--queue", "q", "--builtin", "echo", "--concurrency", "2")
        ids = [enqueue(self.r, "q", f"hello {i}") for i in range(20)]
        for i, task_id in enumerate(ids):
            self.assertEqual(self.result(task_id), f"hello {i}")
        self.assertEqual(self.task(ids[0])["state"], "succeeded")
        self.stop_worker(w)
        self.assertIn("done=20", w.log_text())

    def test_fail_is_retried_then_dead_lettered(self):
        w = self.start_worker("--queue", "q", "--builtin", "fail")
        task_id = enqueue(self.r, "q", "x", "RETRIES", 1, "BACKOFF", 10, 20)
        t = self.wait_state(task_id, "dead")
        self.assertEqual(t["attempt"], 2)
        self.assertEqual(t["error"], "fail: this builtin always fails")
        self.assertIn(task_id, self.r.execute_command("DEAD", "q"))
        self.stop_worker(w)

    def test_time_limit_fails_with_time_limit_exceeded_and_the_worker_goes_on(self):
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                              "--prefetch", "0")
        slow = enqueue(self.r, "q", "20000", "TIMEOUT", 600, "RETRIES", 0)
        quick = enqueue(self.r, "q", "10")
        t = self.wait_state(slow, "dead", timeout=5)
        self.assertEqual(t["error"], "time limit exceeded")
        self.assertEqual(self.result(quick, 5000), "10")
        self.stop_worker(w)

    # ---- crashes ----------------------------------------------------------------------------

    def test_worker_killed_mid_task_is_redelivered_to_another_worker(self):
        first = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                                  "--prefetch", "0")
        task_id = enqueue(self.r, "q", "2500")
        self.wait_state(task_id, "leased")
        time.sleep(0.8)  # past the first EXTEND: the lease is the worker's
        first.kill_group()
        second = self.start_worker("--queue", "q", "--builtin", "sleep")
        self.assertEqual(self.result(task_id), "2500")
        t = self.task(task_id)
        self.assertEqual(t["state"], "succeeded")
        self.assertEqual(t["attempt"], 2)
        self.stop_worker(second)

    def test_broker_restart_under_a_running_worker(self):
        server = self.start_conveyor("--default-lease-ms", LEASE_MS,
                                     port=free_port_outside_ephemeral_range())
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "2",
                              server=server)
        r = server.client()
        self.addCleanup(r.close)
        running = [enqueue(r, "q", "1500") for _ in range(2)]
        wait_until(lambda: self.leased_count("q", server) == 2, 5, message="2 leased")
        server.restart(sig=signal.SIGKILL)
        r = server.client()
        self.addCleanup(r.close)
        later = [enqueue(r, "q", "50") for _ in range(5)]
        for task_id in running + later:
            reply = r.execute_command("RESULT", task_id, "WAIT", 20000)
            self.assertIsNotNone(reply, f"task {task_id} not finished: "
                                        f"{task_info(r, task_id)}")
        wait_until(lambda: "reconnected" in w.log_text(), 5, message="a reconnect logged")
        self.assertIsNone(w.proc.poll(), "the worker must survive a broker restart")
        self.stop_worker(w)
        self.assertEqual(self.leased_count("q", server), 0)

    def test_network_cut_mid_task_reconnects_and_delivers_the_outcome(self):
        """The connections break while a task runs (the broker stays up): the worker
        reconnects, the task goes on and its ACK arrives after the reconnect, within its
        lease, so there is no redelivery."""
        proxy = CuttableProxy(self.server.port)
        self.addCleanup(proxy.close)
        w = WorkerProcess(proxy.port, ("--queue", "q", "--builtin", "sleep", "--concurrency", "1"),
                          self.server.workdir, "worker-proxied")
        self._workers.append(w)
        self.addCleanup(w.kill_group)
        task_id = enqueue(self.r, "q", "1200")
        self.wait_state(task_id, "leased")
        time.sleep(0.3)
        proxy.cut()
        info = self.wait_state(task_id, "succeeded", timeout=15)
        self.assertEqual(int(info["attempt"]), 1, f"redelivered after the cut:\n{w.log_text()}")
        wait_until(lambda: "reconnected" in w.log_text(), 5, message="a reconnect logged")
        later = enqueue(self.r, "q", "10")
        self.wait_state(later, "succeeded")
        self.assertIsNone(w.proc.poll(), "the worker must survive a network cut")

    def test_ack_answered_leaselost_is_logged_and_the_worker_goes_on(self):
        """The broker is down longer than the lease: on restart the lease has ended and the
        task is redelivered; the first worker's late ACK gets LEASELOST, which it logs and
        shrugs off."""
        server = self.start_conveyor("--default-lease-ms", LEASE_MS,
                                     port=free_port_outside_ephemeral_range())
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                              server=server)
        r = server.client()
        self.addCleanup(r.close)
        task_id = enqueue(r, "q", "2500")
        wait_until(lambda: self.leased_count("q", server) == 1, 5, message="leased")
        server.kill9()
        time.sleep(LEASE_MS / 1000 + 1.0)  # the lease runs out while the broker is down
        server.restart()
        r = server.client()
        self.addCleanup(r.close)
        self.assertIsNotNone(r.execute_command("RESULT", task_id, "WAIT", 20000))
        wait_until(lambda: "LEASELOST" in w.log_text(), 10,
                   message=f"a LEASELOST logged:\n{w.log_text()}")
        self.assertGreaterEqual(int(task_info(r, task_id)["attempt"]), 2)
        self.assertIsNone(w.proc.poll(), "LEASELOST must not be fatal")
        later = enqueue(r, "q", "10")
        self.assertIsNotNone(r.execute_command("RESULT", later, "WAIT", 10000))

    def test_a_route_concurrency_limit_runs_its_tasks_one_at_a_time(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("slow builtin concurrency=1 -- sleep\n* builtin -- echo\n")
        self.addCleanup(os.unlink, f.name)
        self.start_worker("--queue", "q", "--handlers", f.name, "--concurrency", "4")
        started = time.monotonic()
        slow = [enqueue(self.r, "q", "400", "NAME", "slow") for _ in range(3)]
        fast = [enqueue(self.r, "q", f"f{i}", "NAME", "fast") for i in range(3)]
        for i, task_id in enumerate(fast):
            self.assertEqual(self.result(task_id), f"f{i}")
        fast_done = time.monotonic() - started
        for task_id in slow:
            self.assertIsNotNone(self.result(task_id))
        elapsed = time.monotonic() - started
        # One at a time: three 400 ms sleeps take at least 1.2 s (at once they would take
        # 0.4 s), while the other route is not held up behind them.
        self.assertGreaterEqual(elapsed, 1.15)
        self.assertLess(fast_done, 1.0)

    # ---- shutdown ---------------------------------------------------------------------------

    def test_warm_shutdown_finishes_running_and_releases_prefetched(self):
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                              "--prefetch", "1")
        running = enqueue(self.r, "q", "1500")
        prefetched = enqueue(self.r, "q", "1500")
        wait_until(lambda: self.leased_count("q") == 2, 5, message="both tasks leased")
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(10), 0, w.log_text())
        self.assertEqual(self.result(running, 0), "1500")
        t = self.task(prefetched)
        self.assertEqual(t["state"], "queued")
        self.assertEqual(t["attempt"], 0)  # RELEASE gave the attempt back
        self.assertEqual(self.leased_count("q"), 0)

    def test_warm_shutdown_stops_and_releases_after_the_shutdown_timeout(self):
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                              "--prefetch", "0", "--shutdown-timeout", "0.5")
        task_id = enqueue(self.r, "q", "30000", "RETRIES", 0)
        self.wait_state(task_id, "leased")
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(10), 0, w.log_text())
        t = self.task(task_id)
        self.assertEqual(t["state"], "queued", t)
        self.assertEqual(self.leased_count("q"), 0)

    def test_cold_shutdown_releases_the_running_task(self):
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                              "--prefetch", "0")
        task_id = enqueue(self.r, "q", "30000", "RETRIES", 0)
        self.wait_state(task_id, "leased")
        w.signal(signal.SIGTERM)
        time.sleep(0.2)
        w.signal(signal.SIGTERM)
        self.assertEqual(w.wait(5), 0, w.log_text())
        t = self.task(task_id)
        self.assertEqual(t["state"], "queued", t)  # released, not failed: RETRIES 0 kept it
        self.assertEqual(t["attempt"], 0)  # the attempt was given back
        self.assertIsNone(t["error"])
        self.assertEqual(self.leased_count("q"), 0)
        self.assertIn("cold shutdown", w.log_text())

    # ---- cancellation -----------------------------------------------------------------------

    def test_cancel_stops_the_running_task_and_the_worker_goes_on(self):
        w = self.start_worker("--queue", "q", "--builtin", "sleep", "--concurrency", "1",
                              "--prefetch", "0")
        long_task = enqueue(self.r, "q", "30000")
        self.wait_state(long_task, "leased")
        self.assertEqual(self.r.execute_command("CANCEL", long_task), 1)
        next_task = enqueue(self.r, "q", "10")
        # Only once the worker stopped the 30 s sleep can the single slot run this one.
        self.assertEqual(self.result(next_task, 8000), "10")
        self.assertEqual(self.task(long_task)["state"], "cancelled")
        self.assertIn(f"task {long_task}: cancelled; stopping it", w.log_text())
        self.stop_worker(w)

    # ---- start-up -----------------------------------------------------------------------------

    def test_unreachable_broker_at_start_exits_non_zero_with_a_clear_message(self):
        port = free_port()  # nobody listens there
        start = time.monotonic()
        code, out = run_conveyor("worker", "--connect", f"{HOST}:{port}", "--queue", "q",
                                 "--builtin", "echo", "--connect-timeout", "1", timeout=15)
        self.assertIsNotNone(code, f"worker did not exit:\n{out}")
        self.assertNotEqual(code, 0, out)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertIn(f"cannot reach the broker at {HOST}:{port} within 1000 ms", out)

    def test_bad_flags_are_usage_errors(self):
        for args, message in [
            (("--queue", "q"), "exactly one of --exec, --pipe, --builtin, --handlers"),
            (("--builtin", "echo"), "at least one --queue"),
            (("--queue", "q", "--builtin", "nope"), "unknown --builtin 'nope'"),
            (("--queue", "q", "--builtin", "echo", "--concurrency", "x"), "concurrency"),
            (("--queue", "q", "--builtin", "echo", "--exec", "cat"), "exactly one of"),
        ]:
            code, out = run_conveyor("worker", *args)
            self.assertEqual(code, 2, f"{args}: {out}")
            self.assertIn(message, out, args)


if __name__ == "__main__":
    unittest.main()
