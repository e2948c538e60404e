#!/usr/bin/env python3
"""The README's `conveyor worker --exec 'python3 examples/send_email.py'` handler.

A task handler for `--exec`: the payload arrives on stdin, stdout is the result, and the exit
status decides (0: done; anything else: failed, stderr's tail is the error). This one sends
nothing: it checks the payload is JSON with a "to" address, writes the message it would send
to stderr, and answers "sent". Replace the marked line with smtplib to send for real.
"""
import json
import sys


def main() -> int:
    try:
        task = json.load(sys.stdin)
    except ValueError as e:
        print(f"payload is not JSON: {e}", file=sys.stderr)
        return 1
    to = task.get("to") if isinstance(task, dict) else None
    if not isinstance(to, str) or "@" not in to:
        print('payload needs a "to" address, e.g. {"to":"ada@example.com"}', file=sys.stderr)
        return 1
    subject = task.get("subject", "hello")
    # Sending for real: smtplib.SMTP("localhost").sendmail(sender, [to], message)
    print(f"would send {subject!r} to {to}", file=sys.stderr)
    print("sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
