"""INFO sections (via redis-py and redis-cli) and read-only CONFIG GET."""

import re
import unittest

import redis

from harness import ConveyorTestCase, enqueue, lease_one

SECTIONS = ("server", "clients", "memory", "persistence", "stats", "queues")
STATS_FIELDS = ("tasks_enqueued", "tasks_leased", "tasks_succeeded", "tasks_failed",
                "tasks_dead", "tasks_expired", "tasks_cancelled")


def section_headers(info_text):
    return {m.group(1).strip().lower() for m in re.finditer(r"^# (.+?)\r?$", info_text, re.M)}


def queue_line(info_text, queue):
    """The INFO queues line for `queue` (one line per queue, naming it before its counts)."""
    for line in info_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if re.match(r"^(queue[_:])?%s[:=,\s]" % re.escape(queue), line):
            return line
    return None


def count_in(line, field):
    m = re.search(r"\b%s[=:](\d+)" % field, line)
    assert m, f"no {field} count in INFO queues line {line!r}"
    return int(m.group(1))


class InfoTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "5000")

    def info_text(self, *section):
        """INFO's reply as text (redis-py would parse it into a dict)."""
        reply = self.raw().command("INFO", *section)
        self.assertIsInstance(reply, bytes, f"INFO replied {reply!r}")
        return reply.decode()

    def test_info_without_section_prints_every_section(self):
        text = self.info_text()
        headers = section_headers(text)
        for name in SECTIONS:
            self.assertIn(name, headers, f"INFO lacks '# {name.capitalize()}'")

    def test_info_section_prints_only_that_section(self):
        for name in SECTIONS:
            with self.subTest(section=name):
                text = self.info_text(name)
                self.assertEqual(section_headers(text), {name}, text)

    def test_info_stats_counts_task_lifecycle(self):
        r = self.client()
        enqueue(r, "stats_q", "a")
        enqueue(r, "stats_q", "b")
        enqueue(r, "stats_q", "c")
        t = lease_one(r, "stats_q")
        self.assertEqual(r.execute_command("ACK", t["lease"]), 1)
        t = lease_one(r, "stats_q")
        self.assertEqual(r.execute_command("FAIL", t["lease"], "boom", "NORETRY"), "dead")
        queued = enqueue(r, "stats_q", "d")
        # "c" is still queued ahead of "d"; cancel "d".
        self.assertEqual(r.execute_command("CANCEL", queued), 1)
        stats = r.info("stats")
        for field in STATS_FIELDS:
            self.assertIn(field, stats, f"INFO stats lacks {field}")
        self.assertEqual(stats["tasks_enqueued"], 4)
        self.assertEqual(stats["tasks_leased"], 2)
        self.assertEqual(stats["tasks_succeeded"], 1)
        self.assertEqual(stats["tasks_failed"], 1)
        self.assertEqual(stats["tasks_dead"], 1)
        self.assertEqual(stats["tasks_expired"], 0)
        self.assertEqual(stats["tasks_cancelled"], 1)

    def test_info_queues_has_one_line_per_queue_with_counts(self):
        r = self.client()
        for i in range(3):
            enqueue(r, "alpha", f"a{i}")
        enqueue(r, "beta", "later", "DELAY", 60000)
        enqueue(r, "beta", "b0")
        enqueue(r, "beta", "b1")
        lease_one(r, "beta")
        t = lease_one(r, "beta")
        r.execute_command("FAIL", t["lease"], "boom", "NORETRY")
        text = self.info_text("queues")
        alpha, beta = queue_line(text, "alpha"), queue_line(text, "beta")
        self.assertIsNotNone(alpha, text)
        self.assertIsNotNone(beta, text)
        self.assertEqual([count_in(alpha, f) for f in ("ready", "delayed", "leased", "dead")],
                         [3, 0, 0, 0], alpha)
        self.assertEqual([count_in(beta, f) for f in ("ready", "delayed", "leased", "dead")],
                         [0, 1, 1, 1], beta)

    def test_redis_cli_info_queues(self):
        r = self.client()
        enqueue(r, "cli_queue", "x")
        out = self.server.redis_cli("INFO", "queues")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("# Queues".lower(), out.stdout.lower())
        line = queue_line(out.stdout, "cli_queue")
        self.assertIsNotNone(line, out.stdout)
        self.assertEqual(count_in(line, "ready"), 1)

    def test_redis_py_parses_info(self):
        info = self.client().info()
        self.assertIsInstance(info, dict)
        self.assertIn("tasks_enqueued", info)


class ConfigGetTest(ConveyorTestCase):
    server_args = ("--default-lease-ms", "1234", "--default-retries", "7")

    def test_config_get_port_returns_running_port(self):
        reply = self.client().config_get("port")
        self.assertEqual(reply, {"port": str(self.server.port)})

    def test_config_get_reports_command_line_values(self):
        r = self.client()
        self.assertEqual(r.config_get("default-lease-ms"), {"default-lease-ms": "1234"})
        self.assertEqual(r.config_get("default-retries"), {"default-retries": "7"})

    def test_config_get_unknown_parameter_is_empty(self):
        self.assertEqual(self.client().config_get("no-such-parameter"), {})

    def test_config_set_is_refused(self):
        with self.assertRaises(redis.ResponseError):
            self.client().config_set("default-retries", "1")
        self.assertEqual(self.client().config_get("default-retries"), {"default-retries": "7"})


if __name__ == "__main__":
    unittest.main()
