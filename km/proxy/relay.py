"""The forwarding path: one thread per direction, blocking reads and writes, nothing in between.

Each `Pump` reads whatever bytes are available (a partial line is forwarded as it comes),
writes them all to the other side, and only then hands them to the framer and the capture
queue. Blocking I/O in a thread beats an event loop here: one `read` and one `write` system
call per chunk, back-pressure for free (a full pipe blocks the writer, so the reader stops
reading), and no `O_NONBLOCK` set on file descriptions km shares with its client.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from km.capture.framing import LineFramer
from km.proxy.capture_queue import Lane

READ_SIZE = 256 * 1024  # bytes per read; a pipe rarely holds more


class Pump:
    """Copies `src_fd` to `dst_fd` until EOF, then calls `on_eof(pump)`.

    When the destination breaks (the reader went away), the pump keeps reading and capturing,
    so the writer on the other side never blocks on a full pipe, and reports it once through
    `on_broken(pump)`.
    """

    __slots__ = (
        "_framer",
        "_lane",
        "_on_broken",
        "_on_eof",
        "_thread",
        "bytes_forwarded",
        "dst_error",
        "dst_fd",
        "name",
        "src_error",
        "src_fd",
    )

    def __init__(
        self,
        name: str,
        src_fd: int,
        dst_fd: int,
        framer: LineFramer | None,
        lane: Lane | None,
        on_eof: Callable[[Pump], None],
        on_broken: Callable[[Pump], None],
    ) -> None:
        self.name = name
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        self._framer = framer
        self._lane = lane
        self._on_eof = on_eof
        self._on_broken = on_broken
        self.bytes_forwarded = 0
        self.src_error: OSError | None = None
        self.dst_error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=f"km-pump-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None) -> bool:
        """Wait for EOF on the source; True when the pump has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        read = os.read
        write = os.write
        src = self.src_fd
        dst = self.dst_fd
        framer = self._framer
        feed = framer.feed if framer is not None else None
        put = self._lane.put if self._lane is not None else None
        monotonic_ns = time.monotonic_ns
        time_ns = time.time_ns
        forwarding = True
        forwarded = 0
        while True:
            try:
                data = read(src, READ_SIZE)
            except OSError as exc:
                self.src_error = exc
                break
            if not data:
                break
            if forwarding:
                try:
                    sent = write(dst, data)
                    if sent != len(data):
                        self._write_rest(data, sent)
                    forwarded += len(data)
                except OSError as exc:
                    forwarding = False
                    self.dst_error = exc
                    self._on_broken(self)
            if feed is not None and put is not None:
                frames = feed(data)
                if frames:
                    mono = monotonic_ns()
                    wall = time_ns()
                    for frame in frames:
                        put(mono, wall, frame)
        self.bytes_forwarded = forwarded
        if framer is not None and put is not None:
            last = framer.close()
            if last is not None:
                put(monotonic_ns(), time_ns(), last)
        self._on_eof(self)

    def _write_rest(self, data: bytes, sent: int) -> None:
        view = memoryview(data)
        total = len(data)
        while sent < total:
            sent += os.write(self.dst_fd, view[sent:])
