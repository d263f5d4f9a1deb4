"""`name = value` shapes in text whose name is sensitive.

This finds `password=hunter2`, `GITHUB_TOKEN: abc`, `"api_key": "..."`, `'secret': '...'` and the
escaped `\\"token\\": \\"...\\"` of JSON inside a JSON string, in prose, logs, env dumps and
in JSON that does not parse (a truncated frame). It starts from each occurrence of a key needle,
widens it to the whole name, and checks the name with the key matcher. The value it replaces is

- a quoted string (`"..."`, `\\"...\\"`, `'...'`), up to its closing quote or the end of the
  text;
- an object or array (`{...}`, `[...]`), up to its closing bracket or the end of the text;
- after `:` and an unquoted name (a header, YAML, prose), the rest of the line, or of the
  single-quoted string the name is in (`curl -H 'Authorization: ...'`);
- otherwise (`=`, or a JSON number or literal) a run of characters up to a space or punctuation.

A JSON-shaped value keeps its quotes, so the JSON stays well-formed where it was. A value that is
already a marker is left alone, which makes redaction idempotent, and so is `Bearer <marker>`:
the scheme is no secret and the token is gone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from km.redact.keys import KeyMatcher, ascii_lower
from km.redact.patterns import MARKER_PREFIX, MARKER_RE, marker

_KEY = marker("key")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_NAME_MAX = 128  # longer runs of name characters are data (base64, hashes), not names
_NAME_END = re.compile(r"[A-Za-z0-9_.\-]*")
_SEP = re.compile(r"[ \t]*(:|=>?)[ \t]*")
_DQ = re.compile(r'"(?:[^"\\\n]|\\.)*"')
# A string of JSON carried inside a JSON string: `\"` opens and closes it, `\\\"` is a quote in it.
_EDQ = re.compile(r'\\"(?:\\\\\\"|\\\\|\\[^"\\]|[^"\\])*?\\"')
_SQ = re.compile(r"'[^'\n]*'")
_LINE = re.compile(r'(?:[^\r\n"\\]|\\(?![nr"]))+')
_LINE_IN_SQ = re.compile(r"""(?:[^\r\n"'\\]|\\(?![nr"]))+""")  # inside '...': stop at the quote
_SCHEME_AND_MARKER = re.compile(r"(?i:bearer|basic|digest|token|bot)[ \t]+\[REDACTED:[a-z0-9_]+\]")
_BARE = re.compile(r"[^\s,;&\"'<>{}\[\]()\\]+")
_STRUCT = re.compile(r'[\[\]{}"\\]')


def redact_pairs(
    text: str, needles: Iterable[str], matcher: KeyMatcher, counts: Counter[str]
) -> str:
    """`text` with the values of its sensitive `name = value` pairs replaced; `text` if none.

    `needles` are the key needles the text holds: each occurrence is a candidate name.
    """
    low = ascii_lower(text)
    hits: list[int] = []
    for needle in needles:
        i = low.find(needle)
        while i >= 0:
            hits.append(i)
            i = low.find(needle, i + 1)
    hits.sort()
    out: list[str] = []
    done = 0  # text[:done] is in `out`
    scanned = 0  # names before this were looked at
    for hit in hits:
        if hit < scanned:
            continue
        m = _NAME_END.match(text, hit)
        end = m.end() if m else hit
        scanned = end
        start = _name_start(text, hit)
        if start is None or end - start > _NAME_MAX:
            continue
        quote = ""
        if start > 0 and text[start - 1] in "\"'":
            quote = text[start - 1]
            if quote == '"' and start > 1 and text[start - 2] == "\\":
                quote = '\\"'
        after = end
        inside = ""  # the quote of a string the name is in: `'Authorization: ...'`
        if quote:
            if text.startswith(quote, end):
                after = end + len(quote)
            else:
                inside, quote = quote, ""
        sep = _SEP.match(text, after)
        if sep is None or not matcher(text[start:end]):
            continue
        value = _value(text, sep.end(), quote, sep.group(1), inside)
        if value is None:
            continue
        value_end, replacement = value
        out.append(text[done : sep.end()])
        out.append(replacement)
        counts["key"] += 1
        done = value_end
        scanned = max(scanned, value_end)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _name_start(text: str, i: int) -> int | None:
    """Where the name around position `i` starts; None if it is too long to be a name."""
    limit = max(0, i - _NAME_MAX)
    start = i
    while start > limit and text[start - 1] in _NAME_CHARS:
        start -= 1
    if start == limit and start > 0 and text[start - 1] in _NAME_CHARS:
        return None
    # `\nGITHUB_TOKEN=...` in JSON text: the name starts after the escape.
    if start > 0 and text[start - 1] == "\\" and text[start] in "nrtbf":
        start += 1
    return start


def _value(text: str, pos: int, quote: str, op: str, inside: str) -> tuple[int, str] | None:
    """Where the value starting at `pos` ends and what replaces it; None to keep it.

    `quote` is the name's own quote (`"name": value`), `inside` the quote of a string holding
    both (`'name: value'`).
    """
    if text.startswith(MARKER_PREFIX, pos):
        return None
    ch = text[pos : pos + 1]
    if ch in ('"', "'") or text.startswith('\\"', pos):
        q = '\\"' if ch == "\\" else ch
        regex = _EDQ if ch == "\\" else _DQ if ch == '"' else _SQ
        m = regex.match(text, pos)
        if m is None:  # not closed: the text was cut inside the value
            return len(text), q + _KEY
        if MARKER_RE.fullmatch(text, pos + len(q), m.end() - len(q)):
            return None
        return m.end(), q + _KEY + q
    if ch in ("{", "["):
        return _struct_end(text, pos, strings=quote != '\\"'), quote + _KEY + quote
    regex = _BARE if quote or op != ":" else _LINE_IN_SQ if inside == "'" else _LINE
    m = regex.match(text, pos)
    if m is None:
        return None
    value = m.group().rstrip()
    if not value or MARKER_RE.fullmatch(value) or _SCHEME_AND_MARKER.fullmatch(value):
        return None
    return pos + len(value), quote + _KEY + quote


def _struct_end(text: str, pos: int, *, strings: bool) -> int:
    """The end of the object or array opening at `pos`, or the end of the text if it is cut.

    With `strings` off (JSON escaped inside a string) quotes are not tracked: brackets are counted.
    """
    depth = 0
    in_string = False
    i = pos
    while True:
        m = _STRUCT.search(text, i)
        if m is None:
            return len(text)
        ch = m.group()
        i = m.end()
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = strings
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i
