"""What a raw payload may hold that the redactor must look at, found in one pass.

The redactor's first step on every captured message, and on a 64 KiB head the largest cost of
capturing big messages. A scan answers three questions about the payload bytes:
- which of the rule set's needles it holds, ASCII letters matched in either case (as the
  needles would be found in `payload.lower()`);
- whether it holds a JSON escape that can hide a needle (`\\u0041`-style escapes of ASCII, or
  `\\/`);
- whether it holds at least `min_digits` digits (a card number may be in there).

Testing each needle with `in` costs one scan of the payload per needle (~0.9 ms for a 64 KiB
payload and 32 needles); so does lowering the payload, each escape test and the digit count
(~20-45 us each). One pass of a multi-pattern matcher over the bytes as they are answers all
three and reports every pattern present, overlapping ones included, so the answer is exactly
the reference loop's (`loop_scanner`):
- Hyperscan (SIMD literal matching, where its wheels exist: x86-64 Linux and Windows, macOS):
  ~6-14 us for 64 KiB, plus ~15 us for the digit count, done by `bytes.translate` (the
  counting pattern would cost Hyperscan 30 ms to compile, at every km start);
- else RE2's `Set` (google-re2, a lazily built DFA): ~80 us for 64 KiB;
- else, or when a needle is not ASCII (ASCII-only case folding cannot find it), the loop.

Compiling the Hyperscan database takes ~4 ms and brings ~4 MB of Hyperscan's compiler into
memory; a process that names a cache directory (`cache_compiled_scanners_in`, the capture
process does) loads the serialized database from there instead, after the first time.
"""

from __future__ import annotations

import os
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~8 ms to import
if TYPE_CHECKING:
    from typing import Any

NeedleFinder = Callable[[bytes], list[str]]
"""Lowercased payload bytes -> the needles it contains."""

PayloadScan = tuple[list[str], bool, bool]
"""(needles found, holds an escape that can hide one, holds at least `min_digits` digits)."""

PayloadScanner = Callable[[bytes], PayloadScan]

BatchScanner = Callable[[Sequence[bytes]], list[bool]]
"""Many payloads -> for each, whether it may hold anything: False exactly when its
`PayloadScan` is `([], False, False)` (no needle, no escape, fewer than `min_digits` digits)."""

_ESCAPED_ASCII = re.compile(rb"\\u00[2-7][0-9a-fA-F]")
_NOT_DIGITS = bytes(c for c in range(256) if not 0x30 <= c <= 0x39)
_NOT_DIGITS_NOR_NEWLINE = bytes(c for c in range(256) if not (0x30 <= c <= 0x39 or c == 0x0A))
_RE2_MAX_MEM = 32 << 20  # bytes; the lazily built DFA of ~40 patterns needs a few MB
_CACHE_FILE = "km-scanner-{key}.hsdb"  # a serialized Hyperscan database, per pattern set
_CACHE_MAGIC = b"km-scanner 1\n"

_cache_dir: list[str] = []  # where compiled scanners are kept, if this process said so


def cache_compiled_scanners_in(directory: str | None) -> None:
    """Keep compiled Hyperscan databases in `directory` (None: compile every time)."""
    _cache_dir[:] = [directory] if directory else []


def payload_scanner(needles: Iterable[str], min_digits: int) -> PayloadScanner:
    """The fastest exact scanner available for `needles` (lowercase strings)."""
    return payload_scanners(needles, min_digits)[0]


def payload_scanners(
    needles: Iterable[str], min_digits: int
) -> tuple[PayloadScanner, BatchScanner]:
    """`payload_scanner`, and a `BatchScanner` for the same needles. With Hyperscan, the batch
    one scans many payloads joined by newlines in one call (~0.1 us a payload where one call
    each costs ~1 us): the capture process pre-scans each read's frames so."""
    ordered = sorted(set(needles))
    if all(n.isascii() for n in ordered):
        both = _hyperscan_scanners(ordered, min_digits)
        if both is not None:
            return both
        scanner = _re2_scanner(ordered, min_digits)
        if scanner is not None:
            return scanner, one_by_one(scanner)
    scanner = loop_scanner(ordered, min_digits)
    return scanner, one_by_one(scanner)


def one_by_one(scan: PayloadScanner) -> BatchScanner:
    """A `BatchScanner` that calls `scan` for each payload."""

    def scan_many(payloads: Sequence[bytes]) -> list[bool]:
        out = []
        for payload in payloads:
            hits, escaped, digits = scan(payload)
            out.append(bool(hits or escaped or digits))
        return out

    return scan_many


def loop_scanner(needles: Iterable[str], min_digits: int) -> PayloadScanner:
    """The reference: `lower()`, one `in` per needle and escape, a digit count."""
    find = loop_finder(needles)

    def scan(payload: bytes) -> PayloadScan:
        escaped = b"\\/" in payload or (
            b"\\u00" in payload and _ESCAPED_ASCII.search(payload) is not None
        )
        digits = len(payload.translate(None, _NOT_DIGITS)) >= min_digits
        return find(payload.lower()), escaped, digits

    return scan


def loop_finder(needles: Iterable[str]) -> NeedleFinder:
    """One `in` test per needle over lowercased text (non-ASCII needles: over decoded text)."""
    listed = list(needles)
    encoded = [(n, n.encode()) for n in listed if n.isascii()]
    wide = [n for n in listed if not n.isascii()]

    def find(low: bytes) -> list[str]:
        hits = [n for n, b in encoded if b in low]
        if wide:
            text = low.decode("utf-8", "surrogateescape").lower()
            hits.extend(n for n in wide if n in text)
        return hits

    return find


def _either_case(needle: str) -> bytes:
    """A regex for `needle` with each ASCII letter matched in both cases, nothing else folded."""
    parts = []
    for ch in needle:
        if "a" <= ch <= "z" or "A" <= ch <= "Z":
            parts.append(f"[{ch.lower()}{ch.upper()}]")
        else:
            parts.append(re.escape(ch))
    return "".join(parts).encode()


def _patterns(needles: list[str]) -> list[bytes]:
    """The needles (indexes 0..n-1), then the two escapes (n, n+1), as regexes that Hyperscan
    and RE2 read the same way over bytes."""
    return [*map(_either_case, needles), rb"\\u00[2-7][0-9a-fA-F]", rb"\\/"]


def _hyperscan_scanner(needles: list[str], min_digits: int) -> PayloadScanner | None:
    both = _hyperscan_scanners(needles, min_digits)
    return None if both is None else both[0]


def _hyperscan_scanners(
    needles: list[str], min_digits: int
) -> tuple[PayloadScanner, BatchScanner] | None:
    try:
        import hyperscan
    except ImportError:
        return None
    patterns = _patterns(needles)
    database = _cached_database(hyperscan, patterns)
    if database is None:
        try:
            database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            database.compile(
                expressions=patterns,
                ids=list(range(len(patterns))),
                elements=len(patterns),
                flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(patterns),  # each id reported once
            )
        except Exception:  # a build that rejects a pattern: RE2 or the loop is always right
            return None
        _save_database(hyperscan, patterns, database)
    count = len(needles)
    escapes = {count, count + 1}
    local = threading.local()  # a scratch space serves one scan at a time: one per thread
    fallbacks: list[PayloadScanner] = []  # built on the first failure only (RE2 costs ~1 MB)

    def fallback(payload: bytes) -> PayloadScan:
        if not fallbacks:
            fallbacks.append(_re2_scanner(needles, min_digits) or loop_scanner(needles, min_digits))
        return fallbacks[0](payload)

    def scan(payload: bytes) -> PayloadScan:
        found: set[int] = set()

        def on_match(pattern: int, start: int, end: int, flags: int, context: object) -> None:
            found.add(pattern)

        try:
            scratch = local.scratch
        except AttributeError:
            scratch = local.scratch = hyperscan.Scratch(database)
        try:
            database.scan(payload, match_event_handler=on_match, scratch=scratch)
        except Exception:  # never let a matcher failure skip redaction
            return fallback(payload)
        digits = len(payload.translate(None, _NOT_DIGITS)) >= min_digits
        if not found:
            return [], False, digits
        hits = [needles[i] for i in sorted(found) if i < count]
        return hits, not escapes.isdisjoint(found), digits

    joinable = not any("\n" in n for n in needles)  # no match can span two joined payloads
    scan_each = one_by_one(scan)

    def scan_many(payloads: Sequence[bytes]) -> list[bool]:
        """One scan over the payloads joined by newlines; after a match, the scan goes on
        from the next payload (so each payload costs at most one match callback)."""
        joined = b"\n".join(payloads)
        if not joinable or len(payloads) < 2 or joined.count(b"\n") != len(payloads) - 1:
            return scan_each(payloads)  # a payload holds a newline: it would split in two
        digit_runs = joined.translate(None, _NOT_DIGITS_NOR_NEWLINE).split(b"\n")
        maybe = [len(run) >= min_digits for run in digit_runs]
        ends = list(accumulate(len(p) + 1 for p in payloads))  # each one's end + separator
        try:
            scratch = local.scratch
        except AttributeError:
            scratch = local.scratch = hyperscan.Scratch(database)
        view = memoryview(joined)
        hit = [0]

        def on_match(pattern: int, start: int, end: int, flags: int, context: object) -> bool:
            hit[0] = end
            return True  # stop: the rest of this payload need not be scanned

        start = 0
        while start < len(joined):
            hit[0] = -1
            try:
                database.scan(view[start:], match_event_handler=on_match, scratch=scratch)
            except hyperscan.ScanTerminated:
                pass
            except Exception:  # never let a matcher failure skip redaction
                return one_by_one(fallback)(payloads)
            if hit[0] < 0:
                break
            i = bisect_left(ends, start + hit[0])  # the payload the match ends in
            maybe[i] = True
            start = ends[i]
        return maybe

    return scan, scan_many


def _identity(hyperscan: Any, patterns: list[bytes]) -> bytes:
    """What a cached database must have been compiled from; stored in the file and compared
    whole, so a file name clash can never load another pattern set. (A database built for
    another CPU does not load: Hyperscan checks that itself.)"""
    return repr((getattr(hyperscan, "__version__", ""), patterns)).encode()


def _cache_path(identity: bytes) -> str | None:
    if not _cache_dir:
        return None
    import zlib  # built in: hashlib would cost ~5 ms of start-up

    key = f"{zlib.crc32(identity):08x}{len(identity):x}"
    return os.path.join(_cache_dir[0], _CACHE_FILE.format(key=key))


def _cached_database(hyperscan: Any, patterns: list[bytes]) -> Any:
    """The database compiled for `patterns` earlier, or None (no cache, missing, unusable)."""
    identity = _identity(hyperscan, patterns)
    path = _cache_path(identity)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
        head = _CACHE_MAGIC + identity + b"\n"
        if not data.startswith(head):
            return None
        return hyperscan.loadb(data[len(head) :], hyperscan.HS_MODE_BLOCK)
    except Exception:
        return None


def _save_database(hyperscan: Any, patterns: list[bytes], database: Any) -> None:
    identity = _identity(hyperscan, patterns)
    path = _cache_path(identity)
    if path is None:
        return
    try:
        from km.files import replace_atomically

        data = _CACHE_MAGIC + identity + b"\n" + hyperscan.dumpb(database)
        replace_atomically(path, data, 0o600)
    except Exception:
        pass  # a cache that cannot be written only costs the next start its 4 ms


def _re2_scanner(needles: list[str], min_digits: int) -> PayloadScanner | None:
    try:
        import re2
    except ImportError:
        return None
    try:
        options = re2.Options()
        options.encoding = re2.Options.Encoding.LATIN1  # one byte, one character: any bytes
        options.max_mem = _RE2_MAX_MEM
        matcher = re2.Set.SearchSet(options)
        for pattern in _patterns(needles):
            matcher.Add(pattern)
        matcher.Add(rb"[0-9](?:[^0-9]*[0-9]){%d}" % max(0, min_digits - 1))  # index n+2
        matcher.Compile()
    except Exception:  # an RE2 build that rejects a pattern: the loop is always right
        return None
    match = matcher.Match
    count = len(needles)
    escape_a, escape_b, digits = count, count + 1, count + 2

    def scan(payload: bytes) -> PayloadScan:
        found = match(payload)
        if not found:
            return [], False, False
        hits = [needles[i] for i in found if i < count]
        return hits, escape_a in found or escape_b in found, digits in found

    return scan
