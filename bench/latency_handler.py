"""A `conveyor worker --pipe` handler for bench/worker.sh: the payload is the task's send
time (Unix seconds); the result is how long after that the handler started it, in seconds."""

import json
import sys
import time

for line in sys.stdin:
    started = time.time()
    msg = json.loads(line)
    if "cancel" in msg:
        continue
    reply = {"id": msg["id"], "ok": True, "result": f"{started - float(msg['payload']):.6f}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
