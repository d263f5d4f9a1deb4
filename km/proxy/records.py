"""Sans-IO encoding of what the forwarding process sends to its capture process.

A record is a fixed 36-byte little-endian header followed by `data_len` bytes of frame head and
`tail_len` bytes of frame tail. Types: FRAME (one captured line), DROPS (frames the forwarding
process could not queue: count in `data_len`, bytes in `size`), END (the server's exit code in
`size`; the session is over). The decoder accepts bytes split anywhere.
"""

from __future__ import annotations

from _struct import Struct  # `struct` re-exports this; the C module skips one import

from km.capture.framing import Frame

HEADER = Struct("<BBxxqqqII")  # type, flags, mono_ns, wall_ns, size, data_len, tail_len
HEADER_SIZE = HEADER.size

FRAME = 1
DROPS = 2
END = 3

DIRECTIONS = ("c2s", "s2c")  # index 0 and 1 in the flags byte (bit 1 is "truncated")
_TRUNCATED = 2


def encode_header(direction: int, mono_ns: int, wall_ns: int, frame: Frame) -> bytes:
    """The header of a FRAME record; `frame.data` then `frame.tail` follow it."""
    flags = direction | (_TRUNCATED if frame.truncated else 0)
    return HEADER.pack(FRAME, flags, mono_ns, wall_ns, frame.size, len(frame.data), len(frame.tail))


def encode_line_header(direction: int, mono_ns: int, wall_ns: int, size: int) -> bytes:
    """The header of a FRAME record for a whole line of `size` bytes (not truncated)."""
    return HEADER.pack(FRAME, direction, mono_ns, wall_ns, size, size, 0)


def encode_frame(direction: int, mono_ns: int, wall_ns: int, frame: Frame) -> bytes:
    return encode_header(direction, mono_ns, wall_ns, frame) + frame.data + frame.tail


def encode_drops(mono_ns: int, wall_ns: int, frames: int, nbytes: int) -> bytes:
    return HEADER.pack(DROPS, 0, mono_ns, wall_ns, nbytes, frames, 0)


def encode_end(mono_ns: int, wall_ns: int, exit_code: int) -> bytes:
    return HEADER.pack(END, 0, mono_ns, wall_ns, exit_code, 0, 0)


def next_boundary(buf: bytes | bytearray, pos: int, stop: int) -> tuple[int, int, bool]:
    """Walk whole records from `pos` (a record's start) to the first record start at or past
    `stop`, once `buf[:stop]` has been written. Returns that offset, the FRAME records that
    went whole, and whether the record `stop` falls inside (if any) is a FRAME."""
    unpack = HEADER.unpack_from
    frames = 0
    while pos < stop:
        type_, _f, _m, _w, _s, data_len, tail_len = unpack(buf, pos)
        if type_ == FRAME:
            pos += HEADER_SIZE + data_len + tail_len
            if pos > stop:
                return pos, frames, True
            frames += 1
        else:
            pos += HEADER_SIZE
    return pos, frames, False


class Record:
    """A decoded record: a FRAME with its `frame`, DROPS with `count` frames of `nbytes`
    bytes, or END with the server's exit code in `count`."""

    __slots__ = ("count", "direction", "frame", "mono_ns", "nbytes", "type", "wall_ns")

    def __init__(
        self,
        type_: int,
        direction: str,
        mono_ns: int,
        wall_ns: int,
        frame: Frame | None = None,
        count: int = 0,
        nbytes: int = 0,
    ) -> None:
        self.type = type_
        self.direction = direction
        self.mono_ns = mono_ns
        self.wall_ns = wall_ns
        self.frame = frame
        self.count = count
        self.nbytes = nbytes


class RecordError(ValueError):
    """The byte stream is not a sequence of records (a bug, never user input)."""


# A frame as the capture pipeline takes it: (direction, mono_ns, wall_ns, frame).
FrameItem = tuple[str, int, int, Frame]


class RecordDecoder:
    """Bytes in, records out. Incomplete records wait in a list of chunks that is joined only
    once the record it starts is complete, so a large frame arriving in many reads is copied
    once, not once per read."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._have = 0  # bytes in `_chunks`
        self._need = HEADER_SIZE  # bytes the first pending record needs before it decodes

    def feed(self, data: bytes) -> list[Record]:
        """Every record completed by `data`, in stream order."""
        frames, others, order = self._decode(data, keep_order=True)
        if not others:
            return [Record(FRAME, d, mono, wall, frame) for d, mono, wall, frame in frames]
        out: list[Record] = []
        f = o = 0
        for is_frame in order:
            if is_frame:
                d, mono, wall, frame = frames[f]
                out.append(Record(FRAME, d, mono, wall, frame))
                f += 1
            else:
                out.append(others[o])
                o += 1
        return out

    def feed_frames(self, data: bytes) -> tuple[list[FrameItem], list[Record]]:
        """The frames completed by `data` in stream order, and apart from them the other
        records (DROPS, END) in stream order: what the capture process takes per read."""
        frames, others, _ = self._decode(data, keep_order=False)
        return frames, others

    def _decode(
        self, data: bytes, keep_order: bool
    ) -> tuple[list[FrameItem], list[Record], list[bool]]:
        frames: list[FrameItem] = []
        others: list[Record] = []
        order: list[bool] = []
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return frames, others, order
            buf = b"".join(self._chunks)
            self._chunks = []
        else:
            buf = data
        n = len(buf)
        pos = 0
        unpack = HEADER.unpack_from
        directions = DIRECTIONS
        append = frames.append
        while n - pos >= HEADER_SIZE:
            type_, flags, mono, wall, size, data_len, tail_len = unpack(buf, pos)
            if type_ == FRAME:
                start = pos + HEADER_SIZE
                mid = start + data_len
                end = mid + tail_len
                if n < end:
                    break
                tail = buf[mid:end] if tail_len else b""
                truncated = bool(flags & _TRUNCATED)
                append(
                    (
                        directions[flags & 1],
                        mono,
                        wall,
                        Frame(buf[start:mid], size, truncated, tail),
                    )
                )
                if keep_order:
                    order.append(True)
                pos = end
                continue
            if type_ == DROPS:
                others.append(Record(DROPS, "km", mono, wall, count=data_len, nbytes=size))
            elif type_ == END:
                others.append(Record(END, "km", mono, wall, count=size))
            else:
                raise RecordError(f"unknown record type {type_} at offset {pos}")
            if keep_order:
                order.append(False)
            pos += HEADER_SIZE
        rest = n - pos
        if rest:
            self._chunks = [buf[pos:]]
            self._have = rest
            self._need = HEADER_SIZE
            if rest >= HEADER_SIZE:  # the header is here: wait for the whole record
                _, _, _, _, _, data_len, tail_len = unpack(buf, pos)
                self._need = HEADER_SIZE + data_len + tail_len
        else:
            self._have = 0
        return frames, others, order

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole record yet."""
        return self._have if self._chunks else 0
