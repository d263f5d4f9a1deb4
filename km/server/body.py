"""Request bodies, decoded with a size cap measured after decompression (sans-IO).

`BodyDecoder` is fed the bytes as they arrive and never holds more than `limit` decoded bytes:
gzip is inflated with `max_length`, so a small compressed "bomb" is refused after producing at
most `limit + 1` bytes, not after inflating all of it. The compressed input is capped too
(incompressible data grows slightly under gzip: `limit` plus 1% and a little is always enough).
Concatenated gzip members (RFC 1952) are accepted; anything after the last member is not.
"""

from __future__ import annotations

import zlib

from km.server.errors import BadRequest, BodyTooLarge, UnsupportedEncoding

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # expect a gzip header and trailer
IDENTITY = ("", "identity")
GZIP = ("gzip", "x-gzip")


def wire_limit(limit: int) -> int:
    """The most compressed bytes worth reading for `limit` decoded bytes."""
    return limit + limit // 100 + 1024


class BodyDecoder:
    def __init__(self, content_encoding: str | None, limit: int) -> None:
        encoding = (content_encoding or "").strip().lower()
        if encoding not in IDENTITY and encoding not in GZIP:
            raise UnsupportedEncoding(content_encoding or "")
        self.limit = limit
        self._gzip = encoding in GZIP
        self._out = bytearray()
        self._wire = 0
        self._wire_limit = wire_limit(limit) if self._gzip else limit
        self._inflater: zlib._Decompress | None = (
            zlib.decompressobj(_GZIP_WBITS) if self._gzip else None
        )
        self._member_done = False  # the last gzip member ended; only another member may follow

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the body; raises `BodyTooLarge` or `BadRequest`."""
        self._wire += len(chunk)
        if self._wire > self._wire_limit:
            raise BodyTooLarge("request body", self.limit)
        if not self._gzip:
            self._out += chunk
            return
        self._inflate(chunk)

    def finish(self) -> bytes:
        """The whole decoded body, once the last chunk has been fed."""
        if self._gzip and not self._member_done:
            raise BadRequest("the gzip body is truncated")
        return bytes(self._out)

    def _inflate(self, data: bytes) -> None:
        while True:
            if self._inflater is None:  # between members: only a new gzip header may follow
                if not data:
                    return
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
                self._member_done = False
            try:
                out = self._inflater.decompress(data, self.limit - len(self._out) + 1)
            except zlib.error as exc:
                raise BadRequest(f"the body is not valid gzip ({exc})") from None
            self._out += out
            if len(self._out) > self.limit:
                raise BodyTooLarge("decompressed request body", self.limit)
            if self._inflater.eof:
                data = self._inflater.unused_data
                self._inflater = None
                self._member_done = True
                continue
            data = self._inflater.unconsumed_tail
            if not data and not out:
                return
