"""`conveyor check-data [--repair] <dir>`: checks and repairs log segments offline.

Segment files are written here in Python, following docs/storage-format.md byte for byte
(header, frames, CRC-32C, `cancel` records), so the test also pins the on-disk format.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

from harness import conveyor_bin

TIMEOUT = 20  # seconds: watchdog for each run of the binary


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zigzag(v):
    return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1


def cancel_record(mono_us, wall_ms, task_id):
    """A `cancel` record: tag 7, instant (two zigzag varints), id (varint length + bytes)."""
    id_bytes = task_id.encode()
    return (bytes([7]) + varint(zigzag(mono_us)) + varint(zigzag(wall_ms))
            + varint(len(id_bytes)) + id_bytes)


def segment_header(seq):
    head = b"CVYLOG1\0" + (1).to_bytes(4, "little") + seq.to_bytes(8, "little")
    return head + crc32c(head).to_bytes(4, "little")


def frame(payload):
    return (len(payload).to_bytes(4, "little") + crc32c(payload).to_bytes(4, "little")
            + payload)


def segment_name(seq):
    return f"{seq:020d}.log"


class CheckDataTest(unittest.TestCase):
    PER_SEGMENT = 10

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="conveyor-check-data-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        # Frame start offsets per segment sequence.
        self.frames = {}

    def write_segment(self, seq, first_id):
        data = bytearray(segment_header(seq))
        offsets = []
        for i in range(self.PER_SEGMENT):
            offsets.append(len(data))
            data += frame(cancel_record(1_000_000 + i, 1_700_000_000_000 + i,
                                        f"task-{first_id + i}"))
        self.frames[seq] = offsets
        with open(self.path(seq), "wb") as f:
            f.write(data)

    def write_log(self):
        self.write_segment(1, 0)
        self.write_segment(2, self.PER_SEGMENT)

    def path(self, seq):
        return os.path.join(self.dir, segment_name(seq))

    def run_check(self, *args):
        proc = subprocess.run([conveyor_bin(), "check-data", *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=TIMEOUT)
        return proc.returncode, proc.stdout, proc.stderr

    def test_clean_log_reports_every_segment_and_the_record_count(self):
        self.write_log()
        code, out, err = self.run_check(self.dir)
        self.assertEqual(code, 0, out + err)
        self.assertIn(f"{segment_name(1)}: 10 records, {os.path.getsize(self.path(1))} bytes",
                      out)
        self.assertIn(f"{segment_name(2)}: 10 records", out)
        self.assertIn("clean: 2 segments, 20 records", out)

    def test_directory_without_segments_is_clean(self):
        with open(os.path.join(self.dir, "notes.txt"), "w") as f:
            f.write("not a segment")
        code, out, err = self.run_check(self.dir)
        self.assertEqual(code, 0, out + err)
        self.assertIn("no log segments", out)

    def test_truncated_last_frame_is_a_torn_tail_and_exits_0(self):
        self.write_log()
        last = self.frames[2][-1]
        os.truncate(self.path(2), last + 5)
        code, out, err = self.run_check(self.dir)
        self.assertEqual(code, 0, out + err)
        self.assertIn("torn tail", out)
        self.assertIn(f"{self.path(2)} at byte {last}", out)
        self.assertIn("19 records kept", out)
        # --repair after the directory is accepted too, and cuts the tail.
        code, out, err = self.run_check(self.dir, "--repair")
        self.assertEqual(code, 0, out + err)
        self.assertEqual(os.path.getsize(self.path(2)), last)

    def test_bit_flip_mid_log_is_damage_then_repair_makes_it_clean(self):
        self.write_log()
        bad = self.frames[1][5]
        with open(self.path(1), "r+b") as f:
            f.seek(bad + 8 + 2)
            byte = f.read(1)[0]
            f.seek(bad + 8 + 2)
            f.write(bytes([byte ^ 0x04]))
        code, out, err = self.run_check(self.dir)
        self.assertEqual(code, 1, out + err)
        self.assertIn(f"damage in {self.path(1)} at byte {bad}", err)
        self.assertIn(f"conveyor check-data --repair {self.dir}", err)
        # Records 6..9 of segment 1 and all 10 of segment 2 follow the flipped one.
        self.assertIn("drops about 14 records", err)

        code, out, err = self.run_check("--repair", self.dir)
        self.assertEqual(code, 0, out + err)
        self.assertIn("dropped 14 records", out)
        self.assertEqual(os.path.getsize(self.path(1)), bad)
        self.assertFalse(os.path.exists(self.path(2)))

        code, out, err = self.run_check(self.dir)
        self.assertEqual(code, 0, out + err)
        self.assertIn("clean: 1 segment, 5 records", out)

    def test_missing_middle_segment_is_damage(self):
        self.write_segment(1, 0)
        self.write_segment(3, 20)
        code, out, err = self.run_check(self.dir)
        self.assertEqual(code, 1, out + err)
        self.assertIn(f"{segment_name(2)} is missing", err)

    def test_missing_directory_exits_2(self):
        code, out, err = self.run_check(os.path.join(self.dir, "nope"))
        self.assertEqual(code, 2, out + err)
        self.assertIn("cannot read", err)

    def test_usage_errors_exit_2_and_help_exits_0(self):
        self.assertEqual(self.run_check()[0], 2)
        self.assertEqual(self.run_check("--bogus", self.dir)[0], 2)
        self.assertEqual(self.run_check(self.dir, self.dir)[0], 2)
        code, out, _ = self.run_check("--help")
        self.assertEqual(code, 0)
        self.assertIn("Usage: conveyor check-data [--repair] [--force] <dir>", out)


if __name__ == "__main__":
    unittest.main()
