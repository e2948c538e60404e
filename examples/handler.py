#!/usr/bin/env python3
"""A tiny conveyor pipe handler (stdlib only):  conveyor worker --pipe 'python3 handler.py'

The worker writes one JSON object per line to stdin and reads one reply line per task from
stdout (protocol: docs/worker.md, "Handlers"). One task at a time. Task NAMEs it knows:
  (any other name) echo: the result is the payload (a base64 payload comes back as its text)
  fail             fails without retry
  sleep            sleeps <payload> ms; a cancel line for the task ends it early
  crash            exits in the middle of the task (the worker replaces this process)
Logs go to stderr, which the worker passes through; stdout carries replies only.
"""

import json
import os
import select
import sys
import time


class Lines:
    """Lines from fd 0 with an optional timeout (select and a buffered reader do not mix)."""

    def __init__(self):
        self.buf = b""

    def next(self, timeout=None):
        """The next line, None on timeout; raises EOFError at the end of input."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([0], [], [], left)[0]:
                    return None
            chunk = os.read(0, 65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def sleep_task(task, lines):
    """Sleeps payload ms, watching stdin for this task's cancel line."""
    deadline = time.monotonic() + int(task["payload"] or 0) / 1000.0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"id": task["id"], "ok": True, "result": "slept"}
        message = lines.next(timeout=left)
        if message is not None and message.get("cancel") == task["id"]:
            return {"id": task["id"], "ok": False, "error": "cancelled", "retry": True}


def run(task, lines):
    name = task.get("name")
    if name == "fail":
        return {"id": task["id"], "ok": False, "error": "failed on purpose", "retry": False}
    if name == "sleep":
        return sleep_task(task, lines)
    if name == "crash":
        print(f"handler.py: crashing in task {task['id']}", file=sys.stderr, flush=True)
        os._exit(3)
    return {"id": task["id"], "ok": True, "result": task["payload"]}


def main():
    lines = Lines()
    while True:
        try:
            message = lines.next()
        except EOFError:
            return  # the worker closed stdin: shut down cleanly
        if "cancel" in message:
            continue  # a cancel for a task that already finished
        try:
            reply(run(message, lines))
        except EOFError:
            return
        except Exception as e:  # a bug in a task fails that task, not the handler
            reply({"id": message.get("id"), "ok": False, "error": repr(e), "retry": True})


if __name__ == "__main__":
    main()
