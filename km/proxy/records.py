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


class RecordDecoder:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> list[Record]:
        self._buf += data
        buf = self._buf
        out: list[Record] = []
        pos = self._pos
        while len(buf) - pos >= HEADER_SIZE:
            type_, flags, mono, wall, size, data_len, tail_len = HEADER.unpack_from(buf, pos)
            end = pos + HEADER_SIZE + data_len + tail_len
            if type_ not in (FRAME, DROPS, END):
                raise RecordError(f"unknown record type {type_} at offset {pos}")
            if type_ == FRAME:
                if len(buf) < end:
                    break
                start = pos + HEADER_SIZE
                frame = Frame(
                    bytes(buf[start : start + data_len]),
                    size,
                    bool(flags & _TRUNCATED),
                    bytes(buf[start + data_len : end]),
                )
                out.append(Record(FRAME, DIRECTIONS[flags & 1], mono, wall, frame))
            elif type_ == DROPS:
                out.append(Record(DROPS, "km", mono, wall, count=data_len, nbytes=size))
                end = pos + HEADER_SIZE
            else:
                out.append(Record(END, "km", mono, wall, count=size))
                end = pos + HEADER_SIZE
            pos = end
        if pos > 65536 and pos * 2 > len(buf):
            del buf[:pos]
            pos = 0
        self._pos = pos
        return out

    @property
    def pending(self) -> int:
        return len(self._buf) - self._pos
