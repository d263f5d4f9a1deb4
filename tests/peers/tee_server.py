"""A recording shim for tests: `python tee_server.py <dir> <server command...>` runs the server
and writes every byte it receives to <dir>/c2s and every byte it sends to <dir>/s2c, so a
test can compare what km captured with what really crossed the wire."""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def pump(src: int, dst: int, log_path: str) -> None:
    with open(log_path, "wb", buffering=0) as log:
        while True:
            data = os.read(src, 65536)
            if not data:
                break
            log.write(data)
            os.write(dst, data)
    os.close(dst)


def main() -> int:
    out_dir, command = sys.argv[1], sys.argv[2:]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    inbound = threading.Thread(
        target=pump,
        args=(0, os.dup(child.stdin.fileno()), os.path.join(out_dir, "c2s")),
        daemon=True,
    )
    child.stdin.close()
    inbound.start()
    pump(child.stdout.fileno(), 1, os.path.join(out_dir, "s2c"))
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
