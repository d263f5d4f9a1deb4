"""Character-level poisoning checks: hidden and control characters (P160-P164), names that
mix scripts (P165), and hex or base64 runs that decode to prose (P182/P183). Pure."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from km.insight.text import (
    BIDI,
    TAG_FIRST,
    TAG_LAST,
    VS_SUP_FIRST,
    VS_SUP_LAST,
    ZERO_WIDTH,
    tag_text,
    visible,
)

_HEX_SPACED = re.compile(r"(?:\b[0-9a-fA-F]{2}[ :,-]){16,}[0-9a-fA-F]{2}\b")
_HEX_RUN = re.compile(r"\b(?:[0-9a-fA-F]{2}){24,}\b")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}")
_PROSE = re.compile(r"[A-Za-z]{2,}(?:[ ,.'\[\]:;-]+[A-Za-z]+){4,}")
_LOOKALIKE_SCRIPTS = frozenset(("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"))


def hidden_chars(text: str) -> list[tuple[str, int, int, str]]:
    """(rule id, start, end, detail) for each kind of hidden character in `text`: tag
    characters, bidi controls, invisible format characters, ANSI escapes, other controls."""
    tags: list[int] = []
    bidi: list[int] = []
    invisible: list[int] = []
    ansi: list[int] = []
    control: list[int] = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if cp < 0x20 or 0x7F <= cp <= 0x9F:
            if cp in (0x1B, 0x9B):
                ansi.append(i)
            elif ch in "\n\t" or (ch == "\r" and text[i + 1 : i + 2] == "\n"):
                continue
            else:
                control.append(i)
        elif cp < 0xA0:
            continue
        elif TAG_FIRST <= cp <= TAG_LAST:
            tags.append(i)
        elif cp in BIDI:
            bidi.append(i)
        elif (
            cp in ZERO_WIDTH
            or cp == 0xAD
            or VS_SUP_FIRST <= cp <= VS_SUP_LAST
            or (not ch.isprintable() and unicodedata.category(ch) == "Cf")
        ):
            if (
                cp == 0x200D
                and 0 < i < len(text) - 1
                and not text[i - 1].isascii()
                and not text[i + 1].isascii()
            ):
                continue  # a zero-width joiner inside an emoji sequence
            invisible.append(i)
    found: list[tuple[str, int, int, str]] = []
    for rule_id, where in (
        ("P160", tags),
        ("P161", bidi),
        ("P162", invisible),
        ("P163", ansi),
        ("P164", control),
    ):
        if not where:
            continue
        start, end = where[0], where[-1] + 1
        detail = f"{len(where)} at offset {start}"
        if rule_id == "P160":
            detail += f", hidden text {visible(tag_text(text), 80)!r}"
        found.append((rule_id, start, end, detail))
    return found


def mixed_scripts(name: str) -> str | None:
    """`scripts cyrillic, latin` when `name` mixes Latin letters with look-alike scripts."""
    if name.isascii():
        return None
    scripts = {unicodedata.name(ch, "X").split(" ")[0] for ch in name if ch.isalpha()}
    if "LATIN" in scripts and scripts & _LOOKALIKE_SCRIPTS:
        return "scripts " + ", ".join(sorted(scripts)).lower()
    return None


def first_encoded_prose(text: str) -> tuple[int, int, str] | None:
    """(start, end, decoded text) of the first hex or base64 run in `text` that decodes to
    readable prose, or None."""
    long_token = any(len(token) >= 40 for token in text.split())
    for pattern, decode in ((_HEX_SPACED, _unhex), (_HEX_RUN, _unhex), (_BASE64, _unbase64)):
        if pattern is not _HEX_SPACED and not long_token:
            continue
        for m in pattern.finditer(text):
            decoded = decode(m.group(0))
            if decoded is not None and _PROSE.search(decoded):
                return m.start(), m.end(), decoded
    return None


def _unhex(blob: str) -> str | None:
    digits = re.sub(r"[^0-9a-fA-F]", "", blob)
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return _readable(raw)


def _unbase64(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _readable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    return text if text and printable >= 0.95 * len(text) else None
