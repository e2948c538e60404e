"""Sends tasks.add(x, y) through Conveyor and waits for the result over rpc://.

    python3 producer.py 2 3          # prints 5
"""

import sys

from tasks import add, app


def main(argv):
    x, y = (int(a) for a in argv[1:3]) if len(argv) >= 3 else (2, 3)
    result = add.delay(x, y)
    try:
        print(result.get(timeout=30))
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
