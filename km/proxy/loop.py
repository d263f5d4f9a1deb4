"""The forwarding loop: one thread, `poll`, and nothing between a read and its write.

Both directions, the capture pipe and the signal wake-up pipe are served by one `poll` loop on
the main thread. A read is written to the other side at once; only then is the chunk framed and
its frames queued, as records, for the capture process. One thread means no lock and no GIL
hand-off on the forwarding path (two relay threads cost ~60 us per round trip here, just
waking each other). Back-pressure: when a destination does not take everything, the rest
waits in a buffer and its source is not read again until the buffer has drained, while the
other direction goes on.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import time

from km.capture.framing import Frame, LineFramer
from km.proxy.records import (
    HEADER_SIZE,
    encode_drops,
    encode_header,
    encode_line_header,
    next_boundary,
)

READ_SIZE = 1 << 20  # as much as an enlarged pipe holds, read into one reused buffer
POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
POLLOUT = select.POLLOUT | select.POLLERR | select.POLLHUP


def set_nonblocking(fd: int) -> int:
    """Make `fd` non-blocking; return its previous flags so they can be restored."""
    import fcntl

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    return flags


F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity
# Reads up to this size are kept after the write and framed later (`Relay.frame_deferred`),
# up to `DEFER_BYTES` of them; a bigger read is framed at once (the kept ones first).
DEFER_READ_MAX = 16 * 1024
DEFER_BYTES = 64 * 1024
PIPE_CAPACITY = 1 << 20  # 1 MiB: the largest an unprivileged process may ask for by default


def enlarge_pipe(fd: int) -> None:
    """Give a pipe 1 MiB of capacity instead of 64 KiB (Linux), so large messages cross in
    fewer system calls and wake-ups. Only capacity changes: the bytes and their order do not."""
    try:
        import fcntl

        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_CAPACITY)
    except (ImportError, OSError):
        pass


def is_pipe_or_socket(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class Direction:
    """One way through km: `src` is read, `dst` is written, frames go to the capture buffer."""

    __slots__ = ("dst", "dst_open", "framer", "index", "name", "pending", "src", "src_open")

    def __init__(
        self, index: int, name: str, src: int, dst: int, framer: LineFramer | None
    ) -> None:
        self.index = index
        self.name = name
        self.src = src
        self.dst = dst
        self.framer = framer
        self.pending: memoryview | None = None  # bytes read but not yet written to dst
        self.src_open = True
        self.dst_open = True


class Capture:
    """Frames waiting to be written to the capture process's pipe. Bounded: past the limit a
    frame is dropped and counted; the count is sent as a DROPS record once there is room.

    Start-up spill (`km/proxy/startup.py` decides when): the capture process waits, before
    its imports, until `release`, so it never takes the CPU from a burst sent at spawn. Until
    `end_spill`, records past `max_bytes` are still taken, up to `max_bytes + spill_bytes` and
    while fewer than `spill_frames` frames wait (so a flood of small messages is bounded by the
    capture process's pace, not by bytes); after it, the limit follows the backlog down to
    `max_bytes`: the spill drains and never fills again."""

    __slots__ = (
        "buf",
        "cut_frame",
        "draining",
        "dropped_bytes",
        "dropped_frames",
        "fd",
        "frames",
        "go_fd",
        "limit",
        "max_bytes",
        "spill_frames",
        "start",
        "total_dropped",
    )

    def __init__(
        self,
        fd: int,
        max_bytes: int,
        spill_bytes: int = 0,
        spill_frames: int = 0,
        go_fd: int = -1,
    ) -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self.limit = max_bytes + spill_bytes
        self.spill_frames = spill_frames
        self.draining = False
        self.go_fd = go_fd  # -1 once released (or when the capture process never waits)
        self.buf = bytearray()
        # Frames in `buf` not yet written whole: at exit, those the capture process never gets
        # (a record cut by a partial write is dropped by its decoder at EOF).
        self.frames = 0
        self.start = 0  # where in `buf` the first whole record begins
        self.cut_frame = False  # the bytes before `start` end a FRAME record
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self.total_dropped = 0

    def add(self, direction: int, frames: list[Frame], mono: int, wall: int) -> None:
        buf = self.buf
        for frame in frames:
            # A frame bigger than the whole buffer (a definitions result kept whole) goes when
            # nothing else waits; past `max_bytes` on top of waiting frames, only the spill takes.
            size = len(buf) + len(frame.data) + len(frame.tail)
            if self.fd < 0 or (
                buf
                and size > self.max_bytes
                and (size > self.limit or self.frames >= self.spill_frames)
            ):
                self.dropped_frames += 1
                self.dropped_bytes += frame.size
                self.total_dropped += 1
                continue
            if self.dropped_frames:
                self.flush_drops(mono, wall)
            buf += encode_header(direction, mono, wall, frame)
            buf += frame.data
            if frame.tail:
                buf += frame.tail
            self.frames += 1

    def add_line(self, direction: int, line: memoryview, mono: int, wall: int) -> bool:
        """`add` for one whole line kept as it is (`LineFramer.one_line`), without a `Frame`.
        False, with nothing done, when it must go the general way: drops wait to be reported,
        the capture pipe is gone, or the line does not fit."""
        buf = self.buf
        if self.dropped_frames or self.fd < 0 or (buf and len(buf) + len(line) > self.max_bytes):
            return False  # past `max_bytes` only the general way may take it (the spill)
        buf += encode_line_header(direction, mono, wall, len(line))
        buf += line
        self.frames += 1
        return True

    @property
    def room(self) -> int:
        """Bytes of records the buffer can still take (0: every frame now is dropped)."""
        waiting = len(self.buf)
        if self.fd < 0 or (waiting >= self.max_bytes and self.frames >= self.spill_frames):
            return 0
        return max(0, self.limit - waiting)

    @property
    def released(self) -> bool:
        return self.go_fd < 0

    def release(self) -> None:
        """Let the capture process start (it waits for one byte or EOF on the go pipe)."""
        if self.go_fd < 0:
            return
        try:
            os.write(self.go_fd, b"\0")
        except OSError:
            pass  # the capture process is gone: the record pipe will say so
        os.close(self.go_fd)
        self.go_fd = -1

    def end_spill(self) -> None:
        """From now on the limit follows the backlog down to `max_bytes`."""
        self.limit = max(self.max_bytes, len(self.buf))
        self.draining = self.limit > self.max_bytes

    def count_dropped(self, frames: int, nbytes: int) -> None:
        self.dropped_frames += frames
        self.dropped_bytes += nbytes
        self.total_dropped += frames

    def flush_drops(self, mono: int, wall: int) -> None:
        """Queue a DROPS record for the frames dropped since the last one."""
        if self.dropped_frames:
            self.buf += encode_drops(mono, wall, self.dropped_frames, self.dropped_bytes)
            self.dropped_frames = self.dropped_bytes = 0

    def flush(self) -> bool:
        """Write what the pipe takes now; True when everything went."""
        if self.fd < 0:
            self._clear()
            return True
        buf = self.buf
        while buf:
            try:
                n = os.write(self.fd, buf)
            except BlockingIOError:
                return False
            except OSError as exc:
                self.broken(exc)
                return True
            if n < len(buf):
                self._wrote_part(n)
            else:
                self.frames = self.start = 0
                self.cut_frame = False
            del buf[:n]
            if self.draining:
                self.limit = max(self.max_bytes, len(buf))
                self.draining = self.limit > self.max_bytes
        return True

    def _wrote_part(self, n: int) -> None:
        """A write ended inside the buffer (maybe inside a record): walk the records it
        finished, to keep `frames` and `start` exact. Only under back-pressure."""
        start = self.start
        if n < start:  # still inside the record cut last time
            self.start = start - n
            return
        done = 1 if start and self.cut_frame else 0  # the record cut last time went whole
        end, walked, self.cut_frame = next_boundary(self.buf, start, n)
        self.frames -= done + walked
        self.start = end - n

    def broken(self, exc: OSError) -> None:
        os.write(
            2,
            f"km: capture process gone ({exc.strerror}); forwarding goes on without it\n".encode(),
        )
        self.total_dropped += self.frames  # they never reach the spool
        self._clear()

    def _clear(self) -> None:
        self.fd = -1
        self.buf.clear()
        self.frames = self.start = 0
        self.cut_frame = False


class Relay:
    """Runs both directions until the supervisor says the session is over."""

    def __init__(self, directions: tuple[Direction, Direction], capture: Capture | None) -> None:
        self.c2s, self.s2c = directions
        self.capture = capture
        self.poll = select.poll()
        self._by_fd: dict[int, tuple[Direction, bool]] = {}  # fd -> (direction, is_source)
        self._capture_watched = False
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)
        self._deferred = bytearray()  # reads not framed yet, back to back
        # (direction, size, monotonic ns) of each read in `_deferred`; cleared in place, never
        # replaced, so the loop may hold on to it
        self.deferred_reads: list[tuple[Direction, int, int]] = []
        self.on_client_done: list[object] = []
        for d in directions:
            self._watch_source(d)

    # --- registration ---------------------------------------------------------------------
    def _watch_source(self, d: Direction) -> None:
        # poll (unlike epoll) accepts regular files too: always readable, EOF read as b"".
        self._by_fd[d.src] = (d, True)
        self.poll.register(d.src, POLLIN)

    def _pause_source(self, d: Direction) -> None:
        if d.src_open:
            self.poll.modify(d.src, 0)

    def _resume_source(self, d: Direction) -> None:
        if d.src_open:
            self.poll.modify(d.src, POLLIN)

    def watch_extra(self, fd: int) -> None:
        self.poll.register(fd, select.POLLIN)

    # --- events ---------------------------------------------------------------------------
    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        return self.poll.poll(-1 if timeout is None else max(0, int(timeout * 1000) + 1))

    def handle(self, fd: int, mask: int) -> bool:
        """Serve one ready fd; False if it is not one of the relay's."""
        entry = self._by_fd.get(fd)
        if entry is None:
            if self._capture_watched and self.capture is not None:
                self.flush_capture()
                return True
            return False
        d, is_source = entry
        if is_source:
            self._read(d)
        else:
            self._write_pending(d)
        return True

    def _read(self, d: Direction) -> None:
        if not d.src_open or d.pending is not None:
            return
        buf = self._buffer  # reused: no allocation (and page faults) per read
        try:
            size = os.readv(d.src, (buf,))
        except BlockingIOError:
            return
        except OSError:
            size = 0
        if not size:
            self._source_eof(d)
            return
        if d.dst_open:
            view = self._view
            try:
                n = os.write(d.dst, view[:size])
            except BlockingIOError:
                n = 0
            except OSError as exc:
                n = size
                self._destination_broken(d, exc)
            if n < size:
                d.pending = memoryview(bytes(view[n:size]))  # the buffer is reused: copy the rest
                self._pause_source(d)
                self._by_fd[d.dst] = (d, False)
                self._register_out(d.dst)
        if d.framer is None or self.capture is None:
            return
        # After the write only a copy and a timestamp: the peer just woken mostly runs on this
        # CPU once km sleeps, so any work here is on the round trip. Framing waits for
        # `frame_deferred` (the loop's next flush, or a read that does not fit any more).
        deferred = self._deferred
        if size <= DEFER_READ_MAX and len(deferred) + size <= DEFER_BYTES:
            deferred += self._view[:size]
            self.deferred_reads.append((d, size, time.monotonic_ns()))
            return
        self.frame_deferred()
        self._frame(d, buf, size, time.monotonic_ns(), time.time_ns())

    def frame_deferred(self) -> None:
        """Frame the reads kept by `_read`, in the order they came, into the capture buffer."""
        marks = self.deferred_reads
        if not marks:
            return
        deferred = self._deferred
        wall_offset = time.time_ns() - time.monotonic_ns()
        start = 0
        frame = self._frame
        for d, size, mono in marks:
            end = start + size
            frame(d, deferred[start:end], size, mono, mono + wall_offset)
            start = end
        marks.clear()
        deferred.clear()

    def _frame(self, d: Direction, buf: bytearray, size: int, mono: int, wall: int) -> None:
        framer, capture = d.framer, self.capture
        assert framer is not None and capture is not None
        n = framer.one_line(buf, size)  # the common case: one small message, no objects
        if n > 0 and capture.add_line(d.index, memoryview(buf)[:n], mono, wall):
            return
        # Frame what the capture buffer may still take. Past that every frame is dropped,
        # so the rest of the chunk is only counted (no object per line): under overload
        # forwarding keeps its pace.
        room = capture.room
        stop = 0
        if room:
            frames, stop = framer.feed_within(buf, size, 0, room, HEADER_SIZE)
            if frames:
                capture.add(d.index, frames, mono, wall)
        if stop < size:
            capture.count_dropped(*framer.skip(buf, size, stop))

    def _register_out(self, fd: int) -> None:
        self.poll.register(fd, POLLOUT)  # registering again only modifies

    def _write_pending(self, d: Direction) -> None:
        view = d.pending
        if view is None:
            return
        try:
            n = os.write(d.dst, view)
        except BlockingIOError:
            return
        except OSError as exc:
            self._destination_broken(d, exc)
            return
        if n < len(view):
            d.pending = view[n:]
            return
        d.pending = None
        self.poll.unregister(d.dst)
        del self._by_fd[d.dst]
        if d.src_open:
            self._resume_source(d)
        else:
            self._finish_destination(d)

    def _source_eof(self, d: Direction) -> None:
        d.src_open = False
        try:
            self.poll.unregister(d.src)
        except (KeyError, OSError):
            pass
        self._by_fd.pop(d.src, None)
        if d.framer is not None and self.capture is not None:
            self.frame_deferred()  # reads kept for later come before the last partial line
            last = d.framer.close()
            if last is not None:
                self.capture.add(d.index, [last], time.monotonic_ns(), time.time_ns())
        if d.pending is None:
            self._finish_destination(d)

    def _finish_destination(self, d: Direction) -> None:
        """The source is done and everything was written: pass the EOF on (client -> server)."""
        if d is self.c2s and d.dst_open:
            self.close_server_stdin()
        self._client_done_if(d is self.c2s)

    def _destination_broken(self, d: Direction, exc: OSError) -> None:
        d.dst_open = False
        if d.pending is not None:
            d.pending = None
            try:
                self.poll.unregister(d.dst)
            except (KeyError, OSError):
                pass
            self._by_fd.pop(d.dst, None)
            self._resume_source(d)
        if d is self.s2c and exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET):
            self._client_done_if(True)

    def _client_done_if(self, condition: bool) -> None:
        if condition:
            for callback in self.on_client_done:
                callback()  # type: ignore[operator]

    def close_server_stdin(self) -> None:
        d = self.c2s
        if not d.dst_open:
            return
        d.dst_open = False
        if d.pending is not None:
            d.pending = None
            self.poll.unregister(d.dst)
            self._by_fd.pop(d.dst, None)
        os.close(d.dst)

    # --- the end ----------------------------------------------------------------------------
    @property
    def server_output_done(self) -> bool:
        """The server's stdout reached EOF and all of it was written (or the client is gone)."""
        s2c = self.s2c
        return not s2c.src_open and (s2c.pending is None or not s2c.dst_open)

    def flush_capture(self) -> None:
        """Frame the reads kept for later, write queued records to the capture pipe; watch it
        for room when it is full."""
        capture = self.capture
        if capture is None:
            return
        self.frame_deferred()
        fd = capture.fd
        done = capture.flush() if capture.buf else True
        if not done and not self._capture_watched:
            self.poll.register(fd, POLLOUT)
            self._capture_watched = True
        elif done and self._capture_watched:
            self._capture_watched = False
            try:
                self.poll.unregister(fd)
            except (KeyError, ValueError):
                pass  # the capture pipe broke and was given up
