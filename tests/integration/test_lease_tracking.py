"""The leases a connection is known to hold (for --output-buffer-limit's release) stay bounded
when another connection ACKs them, as `conveyor worker` does (it leases on one connection and
reports on another): CLIENT INFO's `leases=` counts them."""

import re
import unittest

from harness import ConveyorTestCase, pairs_to_dict


def leases_held(conn):
    info = conn.command("CLIENT", "INFO")
    match = re.search(rb"leases=(\d+)", info)
    assert match, f"no leases= in CLIENT INFO: {info!r}"
    return int(match.group(1))


class LeaseTrackingTest(ConveyorTestCase):

    def test_leases_acked_elsewhere_are_forgotten(self):
        leaser, reporter = self.raw(), self.raw()
        producer = self.client()
        pipe = producer.pipeline(transaction=False)
        for i in range(3000):
            pipe.execute_command("ENQUEUE", "jobs", f"t{i}")
        pipe.execute()
        for _ in range(30):
            tasks = leaser.command("LEASE", "COUNT", "100", "FROM", "jobs")
            self.assertEqual(len(tasks), 100)
            for t in tasks:
                self.assertEqual(reporter.command("ACK", pairs_to_dict(t)["lease"]), 1)
        # 3,000 leases went through the connection, all ended elsewhere: what it keeps is
        # pruned whenever it reaches its bound, so it never holds them all.
        self.assertLessEqual(leases_held(leaser), 1024)
        # Leases it still holds are kept, and ACKs on the same connection drop them at once.
        held = leaser.command("LEASE", "COUNT", "5", "FROM", "jobs")
        self.assertEqual(held, [])
        producer.execute_command("ENQUEUE", "jobs", "last")
        (task,) = leaser.command("LEASE", "FROM", "jobs")
        before = leases_held(leaser)
        self.assertEqual(leaser.command("ACK", pairs_to_dict(task)["lease"]), 1)
        self.assertEqual(leases_held(leaser), before - 1)


if __name__ == "__main__":
    unittest.main()
