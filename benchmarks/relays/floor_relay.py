"""Baseline: the least a Python relay can do. Captures nothing, handles nothing.

    python benchmarks/relays/floor_relay.py <server command...>

Imports only `os`, `sys` (loaded before any script runs) and `select`, forks the server with
its stdin and stdout on pipes, and copies both directions in one `poll` loop through a reused
1 MiB buffer, holding what a full pipe does not take until it drains; the server's stderr is
inherited and the exit status is the server's. No framing, no error messages, no signals: it
is not a tool but the floor a Python relay stands on (the interpreter's start-up plus the
copies), so the end-to-end benchmark can tell how much of km's cost from spawn is Python's own.
"""

from __future__ import annotations

import os
import select
import sys

CHUNK = 1 << 20


def main(argv: list[str]) -> int:
    to_server_r, to_server_w = os.pipe()
    from_server_r, from_server_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child until exec
        os.dup2(to_server_r, 0)
        os.dup2(from_server_w, 1)
        os.execvp(argv[0], argv)
    os.close(to_server_r)
    os.close(from_server_w)
    for fd in (to_server_w, 1):
        os.set_blocking(fd, False)
    buf = bytearray(CHUNK)
    routes = {0: to_server_w, from_server_r: 1}  # source -> destination
    pending: dict[int, memoryview] = {}  # destination -> bytes a full pipe did not take
    poll = select.poll()
    for src in routes:
        poll.register(src, select.POLLIN)
    while from_server_r in routes or 1 in pending:
        for fd, _ in poll.poll():
            if fd in pending:  # a destination with room again
                rest = pending.pop(fd)
                rest = rest[_write(fd, rest) :]
                if rest:
                    pending[fd] = rest
                    continue
                poll.unregister(fd)
                src = next(s for s, d in routes.items() if d == fd)
                poll.register(src, select.POLLIN)
                continue
            size = os.readv(fd, (buf,))
            dst = routes[fd]
            if not size:
                poll.unregister(fd)
                os.close(routes.pop(fd))
                continue
            n = _write(dst, memoryview(buf)[:size])
            if n < size:
                pending[dst] = memoryview(bytes(buf[n:size]))
                poll.unregister(fd)
                poll.register(dst, select.POLLOUT)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _write(fd: int, data: memoryview) -> int:
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
