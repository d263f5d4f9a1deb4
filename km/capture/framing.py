"""Sans-IO newline framing of one direction of an MCP stdio stream.

`LineFramer.feed(chunk)` takes bytes exactly as read (split anywhere) and returns the frames the
chunk completed; `LineFramer.close()` returns the unterminated last line at EOF, if any. A frame
is one line without its terminator (`\\n` or `\\r\\n`); empty lines are not frames.

Memory per direction is bounded by `cap + TAIL_BYTES + 1` whatever the frame size: a frame
longer than `cap` keeps its first `cap` bytes (`data`), its last `TAIL_BYTES` (`tail`, so the
JSON-RPC envelope can still be read from both ends) and its full `size`. With a
`definitions_cap`, a frame whose first `cap` bytes show a definitions result (`tools/list` and
the other lists, `initialize`: see `is_definitions`, searched once when the frame passes `cap`)
is kept up to `definitions_cap` instead; other frames cost nothing more. Every byte is looked at
once (`bytes.find` from where the previous search stopped), so a 100 MB frame costs linear time.

This module sits on the forwarding path (it runs right after each write), so it imports nothing.
"""

from __future__ import annotations

TAIL_BYTES = 4096  # how much of an oversized frame's end is kept (envelope fields live there)

# A frame passing the payload cap is kept up to the definitions cap instead when its head
# (the cap's worth, searched once) holds one of these keys followed by `:` and `[` (a list
# result: tools, prompts, resources, resource templates) or `"serverInfo"` (initialize).
_LIST_KEYS = (b'"tools"', b'"prompts"', b'"resources"', b'"resourceTemplates"')
_SERVER_INFO = b'"serverInfo"'
# Requests and notifications are never definitions: their top-level "method" comes before any
# "result", within the envelope's first bytes (JSON-RPC writers put "jsonrpc", "id" and
# "method" or "result" first). Seen there, the five searches over the head are skipped.
_METHOD_KEY = b'"method":'
_RESULT_KEY = b'"result"'
ENVELOPE_HEAD = 256
_WHITESPACE = b" \t\r\n"

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

    __slots__ = (
        "_cap",
        "_definitions_cap",
        "_frame_cap",
        "_head",
        "_head_len",
        "_may_grow",
        "_size",
        "_tail",
    )

    def __init__(self, cap: int, definitions_cap: int = 0) -> None:
        """`cap`: bytes kept of a frame; `definitions_cap` (when larger): bytes kept of a frame
        whose head says it is a definitions result (`is_definitions`)."""
        if cap < 1:
            raise ValueError(f"payload cap must be at least 1 byte, got {cap}")
        self._cap = cap
        self._definitions_cap = definitions_cap if definitions_cap > cap else 0
        self._frame_cap = cap  # the cap of the frame in progress
        self._may_grow = self._definitions_cap > 0  # not yet checked for this frame
        self._head: list[bytes] = []  # first `cap` bytes of the frame in progress
        self._head_len = 0
        self._size = 0  # bytes of the frame in progress so far
        self._tail = b""  # last TAIL_BYTES of the frame in progress

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unfinished frame seen so far."""
        return self._size

    def feed(self, chunk: bytes | bytearray, end: int | None = None, start: int = 0) -> list[Frame]:
        """Frame `chunk[start:end]` (a reused read buffer may be longer than what was read)."""
        return self.feed_within(chunk, end, start)[0]

    def one_line(self, chunk: bytes | bytearray, end: int) -> int:
        """The frame's length when `chunk[:end]` is exactly one line that `feed` would return
        whole (nothing carried over, LF-terminated without a CR, no other LF, not empty, within
        the payload cap), else -1. Changes nothing: a caller that gets -1 calls `feed`. The
        common case of a relay's read (one small message), framed without a `Frame` object."""
        n = end - 1
        if (
            n <= 0
            or self._size
            or n > self._cap
            or chunk[n] != _NL
            or chunk[n - 1] == _CR
            or chunk.find(b"\n", 0, n) >= 0
        ):
            return -1
        return n

    def feed_within(
        self,
        chunk: bytes | bytearray,
        end: int | None = None,
        start: int = 0,
        budget: int | None = None,
        per_frame: int = 0,
    ) -> tuple[list[Frame], int]:
        """`feed`, stopping after the frame that takes the frames' cost past `budget` (a frame
        costs `per_frame` plus the bytes it keeps). Returns the frames and where framing stopped
        (`end` when it went through): the rest is for `skip` or another `feed`."""
        frames: list[Frame] = []
        if end is None:
            end = len(chunk)
        find = chunk.find
        spent = 0
        while start < end:
            nl = find(b"\n", start, end)
            if nl < 0:
                self._extend(chunk, start, end)
                break
            frame: Frame | None = None
            if self._size == 0:
                # Fast path: the whole line is inside this chunk.
                stop = nl - 1 if nl > start and chunk[nl - 1] == _CR else nl
                if stop > start:
                    frame = self._whole(chunk, start, stop)
            else:
                self._extend(chunk, start, nl)
                frame = self._finish()
            start = nl + 1
            if frame is not None:
                frames.append(frame)
                if budget is not None:
                    spent += per_frame + len(frame.data) + len(frame.tail)
                    if spent > budget:
                        return frames, start
        return frames, end

    def skip(
        self, chunk: bytes | bytearray, end: int | None = None, start: int = 0
    ) -> tuple[int, int]:
        """Advance over `chunk[start:end]` exactly as `feed` would, but only count the frames it
        completes: (frames, their total size). For frames that would be dropped anyway (the
        capture buffer is full), so that counting them costs a few C-level passes over the
        chunk instead of an object per line, and forwarding keeps its pace under overload."""
        if end is None:
            end = len(chunk)
        first = chunk.find(b"\n", start, end)
        if first < 0:
            self._extend(chunk, start, end)
            return 0, 0
        edge = self.feed(chunk, first + 1, start)  # the line ending at the first LF
        frames = len(edge)
        nbytes = edge[0].size if edge else 0
        last = chunk.rfind(b"\n", first, end)
        if last > first:
            body = bytes(memoryview(chunk)[first + 1 : last])  # whole lines, but the last LF
            lines = body.split(b"\n")
            frames += len(lines) - lines.count(b"") - lines.count(b"\r")
            terminating_crs = body.count(b"\r\n") + (1 if body.endswith(b"\r") else 0)
            nbytes += len(body) - (len(lines) - 1) - terminating_crs
        self._extend(chunk, last + 1, end)
        return frames, nbytes

    def close(self) -> Frame | None:
        """At EOF: the unterminated last line, if there is one."""
        return self._finish() if self._size else None

    def _whole(self, chunk: bytes | bytearray, start: int, stop: int) -> Frame:
        size = stop - start
        cap = self._cap
        if size <= cap:
            return Frame(bytes(chunk[start:stop]), size, False, b"")
        if self._definitions_cap and is_definitions(chunk, start, start + cap):
            cap = self._definitions_cap
            if size <= cap:
                return Frame(bytes(chunk[start:stop]), size, False, b"")
        tail = bytes(chunk[max(start, stop - TAIL_BYTES) : stop])
        return Frame(bytes(chunk[start : start + cap]), size, True, tail)

    def _extend(self, chunk: bytes | bytearray, start: int, stop: int) -> None:
        n = stop - start
        if n <= 0:
            return
        room = self._frame_cap - self._head_len
        if room < n and self._may_grow:
            # The frame passes the payload cap here: one look at its head decides whether it
            # is kept up to the definitions cap instead.
            self._may_grow = False
            head = b"".join(self._head) + bytes(chunk[start : start + room])
            if is_definitions(head, 0, len(head)):
                self._frame_cap = self._definitions_cap
                room = self._frame_cap - self._head_len
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
        cap = self._frame_cap
        self._head = []
        self._head_len = 0
        self._size = 0
        self._tail = b""
        self._frame_cap = self._cap
        self._may_grow = self._definitions_cap > 0
        # A CR before the LF is part of the terminator, not of the frame.
        if size > cap:
            if tail and tail[-1] == _CR:
                size -= 1
                tail = tail[:-1]
                if size <= cap:
                    return Frame(head[:size], size, False, b"") if size else None
            return Frame(head, size, True, tail[-TAIL_BYTES:])
        if size and head[-1] == _CR:
            size -= 1
            head = head[:-1]
        return Frame(head, size, False, b"") if size else None


def is_definitions(data: bytes | bytearray, start: int, stop: int) -> bool:
    """Whether `data[start:stop]` (a frame's head) holds a list result's key followed by `:`
    and `[`, or `"serverInfo"`: a C-level search per key, for frames past the payload cap.
    A request or notification (`"method":` in the envelope's head, before any `"result"`) is
    not searched: ~75 us saved per frame on the forwarding path."""
    find = data.find
    method = find(_METHOD_KEY, start, min(stop, start + ENVELOPE_HEAD))
    if method >= 0 and find(_RESULT_KEY, start, method) < 0:
        return False
    if find(_SERVER_INFO, start, stop) >= 0:
        return True
    for key in _LIST_KEYS:
        at = find(key, start, stop)
        while at >= 0:
            i = at + len(key)
            while i < stop and data[i] in _WHITESPACE:
                i += 1
            if i < stop and data[i] == 0x3A:  # ':'
                i += 1
                while i < stop and data[i] in _WHITESPACE:
                    i += 1
                if i < stop and data[i] == 0x5B:  # '['
                    return True
            at = find(key, at + 1, stop)
    return False
