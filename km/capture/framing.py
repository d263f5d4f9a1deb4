"""Sans-IO newline framing of one direction of an MCP stdio stream.

`LineFramer.feed(chunk)` takes bytes exactly as read (split anywhere) and returns the frames the
chunk completed; `LineFramer.close()` returns the unterminated last line at EOF, if any. A frame
is one line without its terminator (`\\n` or `\\r\\n`); empty lines are not frames.

Memory per direction is bounded by `cap + TAIL_BYTES + 1` whatever the frame size: a frame
longer than `cap` keeps its first `cap` bytes (`data`), its last `TAIL_BYTES` (`tail`, so the
JSON-RPC envelope can still be read from both ends) and its full `size`. Every byte is looked at
once (`bytes.find` from where the previous search stopped), so a 100 MB frame costs linear time.

This module sits on the forwarding path (it runs right after each write), so it imports nothing.
"""

from __future__ import annotations

TAIL_BYTES = 4096  # how much of an oversized frame's end is kept (envelope fields live there)

_NL = 0x0A
_CR = 0x0D


class Frame:
    """One complete line. `data` is the whole line unless `truncated`; then it is the head."""

    __slots__ = ("data", "size", "tail", "truncated")

    def __init__(self, data: bytes, size: int, truncated: bool, tail: bytes) -> None:
        self.data = data
        self.size = size
        self.truncated = truncated
        self.tail = tail

    def __repr__(self) -> str:
        flag = " truncated" if self.truncated else ""
        return f"Frame(size={self.size}{flag}, data={self.data[:40]!r})"


class LineFramer:
    """Splits a byte stream into newline-delimited frames; see the module docstring."""

    __slots__ = ("_cap", "_head", "_head_len", "_size", "_tail")

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"payload cap must be at least 1 byte, got {cap}")
        self._cap = cap
        self._head: list[bytes] = []  # first `cap` bytes of the frame in progress
        self._head_len = 0
        self._size = 0  # bytes of the frame in progress so far
        self._tail = b""  # last TAIL_BYTES of the frame in progress

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unfinished frame seen so far."""
        return self._size

    def feed(self, chunk: bytes | bytearray, end: int | None = None) -> list[Frame]:
        """Frame `chunk[:end]` (a reused read buffer may be longer than what was read)."""
        frames: list[Frame] = []
        start = 0
        if end is None:
            end = len(chunk)
        find = chunk.find
        while start < end:
            nl = find(b"\n", start, end)
            if nl < 0:
                self._extend(chunk, start, end)
                break
            if self._size == 0:
                # Fast path: the whole line is inside this chunk.
                stop = nl - 1 if nl > start and chunk[nl - 1] == _CR else nl
                if stop > start:
                    frames.append(self._whole(chunk, start, stop))
            else:
                self._extend(chunk, start, nl)
                frame = self._finish()
                if frame is not None:
                    frames.append(frame)
            start = nl + 1
        return frames

    def close(self) -> Frame | None:
        """At EOF: the unterminated last line, if there is one."""
        return self._finish() if self._size else None

    def _whole(self, chunk: bytes | bytearray, start: int, stop: int) -> Frame:
        size = stop - start
        cap = self._cap
        if size <= cap:
            return Frame(bytes(chunk[start:stop]), size, False, b"")
        tail = bytes(chunk[max(start, stop - TAIL_BYTES) : stop])
        return Frame(bytes(chunk[start : start + cap]), size, True, tail)

    def _extend(self, chunk: bytes | bytearray, start: int, stop: int) -> None:
        n = stop - start
        if n <= 0:
            return
        room = self._cap - self._head_len
        if room > 0:
            take = n if n < room else room
            self._head.append(bytes(chunk[start : start + take]))
            self._head_len += take
        self._size += n
        # One byte more than TAIL_BYTES: the last may turn out to be the CR of a CRLF.
        keep = TAIL_BYTES + 1
        piece = bytes(chunk[max(start, stop - keep) : stop])
        if len(piece) >= keep:
            self._tail = piece
        else:
            self._tail = (self._tail + piece)[-keep:]

    def _finish(self) -> Frame | None:
        size = self._size
        head = b"".join(self._head) if len(self._head) != 1 else self._head[0]
        tail = self._tail
        self._head = []
        self._head_len = 0
        self._size = 0
        self._tail = b""
        # A CR before the LF is part of the terminator, not of the frame.
        if size > self._cap:
            if tail and tail[-1] == _CR:
                size -= 1
                tail = tail[:-1]
                if size <= self._cap:
                    return Frame(head[:size], size, False, b"") if size else None
            return Frame(head, size, True, tail[-TAIL_BYTES:])
        if size and head[-1] == _CR:
            size -= 1
            head = head[:-1]
        return Frame(head, size, False, b"") if size else None
