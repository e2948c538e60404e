"""`conveyor user add|del|list --users <file>` as a process: exit statuses (0 done, 1 refused,
2 usage), the file it writes (mode 0600, comments kept, hashes that Python's hashlib
verifies), and `list` never printing a hash. No server is needed: the command edits a file."""

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import REPO_ROOT, conveyor_bin, run_conveyor

TIMEOUT = 20.0


def pbkdf2_matches(password, encoded):
    scheme, iterations, salt, digest = encoded.split("$")
    if scheme != "pbkdf2-sha256":
        return False
    expected = base64.b64decode(digest, validate=True)
    return hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt, validate=True),
                               int(iterations), len(expected)) == expected


class UserCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="conveyor-user-cli-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.users = os.path.join(self.dir, "users")

    def user(self, *args, input=None):
        """Runs `conveyor user <args>`; returns (status, stdout, stderr) as text."""
        proc = subprocess.run([conveyor_bin(), "user", *[str(a) for a in args]],
                              input=input.encode() if input is not None else b"",
                              capture_output=True, timeout=TIMEOUT)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def user_lines(self):
        with open(self.users) as f:
            return [line.split() for line in f if line.startswith("user ")]

    def test_add_creates_a_0600_file_with_a_salted_pbkdf2_hash(self):
        status, out, err = self.user("add", "--users", self.users, "alice", "--password",
                                     "s3cret", "--allow", "enqueue:emails.*",
                                     "--allow", "inspect:*")
        self.assertEqual(status, 0, err)
        self.assertEqual(out, "added user alice\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.users).st_mode), 0o600)
        with open(self.users) as f:
            text = f.read()
        self.assertNotIn("s3cret", text)
        [line] = self.user_lines()
        self.assertEqual(line[:2], ["user", "alice"])
        self.assertEqual(line[3:], ["allow", "enqueue:emails.*", "allow", "inspect:*"])
        self.assertTrue(line[2].startswith("pbkdf2-sha256$10000$"), line[2])
        self.assertTrue(pbkdf2_matches("s3cret", line[2]))
        self.assertFalse(pbkdf2_matches("s3cret!", line[2]))

        # The same password for another user gets another salt.
        status, _, err = self.user("add", "--users", self.users, "bob", "--password", "s3cret")
        self.assertEqual(status, 0, err)
        self.assertIn("bob has no rules", err)
        alice, bob = self.user_lines()
        self.assertNotEqual(alice[2], bob[2])
        self.assertTrue(pbkdf2_matches("s3cret", bob[2]))

    def test_add_of_an_existing_user_replaces_password_and_rules_and_keeps_comments(self):
        with open(self.users, "w") as f:
            f.write("# ops team\n\n")
        os.chmod(self.users, 0o640)
        self.assertEqual(self.user("add", "--users", self.users, "alice", "--password", "one",
                                   "--allow", "all:*")[0], 0)
        status, out, err = self.user("add", "--users", self.users, "alice", "--password", "-",
                                     "--allow", "consume:jobs", input="two\n")
        self.assertEqual(status, 0, err)
        self.assertEqual(out, "updated user alice\n")
        with open(self.users) as f:
            text = f.read()
        self.assertTrue(text.startswith("# ops team\n\n"), text)
        [line] = self.user_lines()
        self.assertEqual(line[3:], ["allow", "consume:jobs"])
        self.assertTrue(pbkdf2_matches("two", line[2]))
        self.assertFalse(pbkdf2_matches("one", line[2]))
        self.assertEqual(stat.S_IMODE(os.stat(self.users).st_mode), 0o640)  # mode kept

    def test_list_shows_rules_and_never_hashes(self):
        self.user("add", "--users", self.users, "alice", "--password", "pw",
                  "--allow", "enqueue:a*", "--allow", "admin:a1")
        self.user("add", "--users", self.users, "bob", "--password", "pw")
        status, out, err = self.user("list", "--users", self.users)
        self.assertEqual(status, 0, err)
        self.assertEqual(out, "alice enqueue:a* admin:a1\nbob (no rules: can do nothing)\n")
        self.assertNotIn("pbkdf2", out + err)

    def test_del_removes_a_user_and_refuses_an_unknown_one(self):
        self.user("add", "--users", self.users, "alice", "--password", "pw")
        self.user("add", "--users", self.users, "bob", "--password", "pw")
        self.assertEqual(self.user("del", "--users", self.users, "alice")[:2],
                         (0, "deleted user alice\n"))
        self.assertEqual([line[1] for line in self.user_lines()], ["bob"])
        status, _, err = self.user("del", "--users", self.users, "alice")
        self.assertEqual(status, 1)
        self.assertIn("no user 'alice'", err)

    def test_refusals_exit_1_with_the_file_and_line(self):
        status, _, err = self.user("list", "--users", os.path.join(self.dir, "absent"))
        self.assertEqual(status, 1)
        self.assertIn("cannot read the users file", err)
        with open(self.users, "w") as f:
            f.write("# mine\nuser alice plain-text-password\n")
        status, _, err = self.user("add", "--users", self.users, "bob", "--password", "pw")
        self.assertEqual(status, 1)
        self.assertIn(f"{self.users}:2: user 'alice'", err)
        with open(self.users) as f:
            self.assertEqual(f.read(), "# mine\nuser alice plain-text-password\n")

    def test_usage_errors_exit_2(self):
        for args in (["add", "alice", "--password", "pw"],                    # no --users
                     ["add", "--users", self.users, "alice"],                 # no --password
                     ["add", "--users", self.users, "alice", "--password", "pw",
                      "--allow", "publish:*"],                                # unknown verb
                     ["add", "--users", self.users, "alice", "--password", "pw",
                      "--allow", "consume"],                                  # no glob
                     ["remove", "--users", self.users, "alice"],
                     ["list", "--users", self.users, "--colour"]):
            with self.subTest(args=args):
                status, _, err = self.user(*args)
                self.assertEqual(status, 2, err)
                self.assertIn("Usage:", err)
        self.assertFalse(os.path.exists(self.users))

    def test_help_and_the_top_level_usage_mention_user(self):
        status, out = run_conveyor("user", "--help")
        self.assertEqual(status, 0, out)
        self.assertIn("conveyor user add", out)
        status, out = run_conveyor("--help")
        self.assertEqual(status, 0, out)
        self.assertIn("user ", out)

    def test_the_example_users_file_parses(self):
        example = os.path.join(REPO_ROOT, "conf", "users.example")
        status, out, err = self.user("list", "--users", example)
        self.assertEqual(status, 0, err)
        self.assertIn("producer enqueue:emails.*", out)


if __name__ == "__main__":
    unittest.main()
