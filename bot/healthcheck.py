"""Container health check: exit 0 if the bot's heartbeat file was touched in the last minute.

The bot touches HEARTBEAT_FILE every 10 seconds from its event loop, so a stale file means
the loop is stuck or the bot has stopped.
"""

import os
import sys
import time

MAX_AGE_S = 60


def main():
    path = os.environ.get("HEARTBEAT_FILE")
    if not path:
        print("HEARTBEAT_FILE is not set", file=sys.stderr)
        return 1
    try:
        age_s = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        print(f"no heartbeat yet: {path} does not exist", file=sys.stderr)
        return 1
    if age_s > MAX_AGE_S:
        print(f"heartbeat is {age_s:.0f} s old", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
