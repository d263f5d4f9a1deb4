"""Text helpers shared by the insight core: make hidden characters visible, find them, and strip
them for matching while keeping offsets into the original text. Pure functions, no I/O."""

from __future__ import annotations

import unicodedata

# Characters a terminal or a model sees differently from a human reading the text.
_NAMED = {
    0x00: "NUL",
    0x07: "BEL",
    0x08: "BS",
    0x1B: "ESC",
    0x7F: "DEL",
}
_ESCAPED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SPACE_RUN = 8  # a run of this many spaces or more is shown as `<N spaces>`

TAG_FIRST, TAG_LAST = 0xE0000, 0xE007F  # Unicode tag characters (invisible ASCII look-alikes)
BIDI = frozenset(
    (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)  # directional marks, embeddings, overrides and isolates
ZERO_WIDTH = frozenset((0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x180E))
# Variation selectors: VS1-16 follow emoji legitimately; the supplement (VS17-256) can carry
# one hidden byte each ("emoji smuggling").
VS_FIRST, VS_LAST = 0xFE00, 0xFE0F
VS_SUP_FIRST, VS_SUP_LAST = 0xE0100, 0xE01EF


def is_hidden(ch: str) -> bool:
    """Whether `ch` is invisible or a control character (newline and tab excepted)."""
    cp = ord(ch)
    if cp < 0x20:
        return ch not in "\n\t\r"
    if cp < 0x7F:
        return False
    if cp <= 0x9F:  # DEL and the C1 controls (0x9B is a one-byte CSI on some terminals)
        return True
    if ch.isprintable():
        return False
    # Not printable: format (Cf), separators other than space (Zl, Zp), private use,
    # surrogates, unassigned. Ordinary spaces such as U+00A0 count as printable.
    return unicodedata.category(ch) != "Zs"


def _hidden_token(ch: str) -> str:
    cp = ord(ch)
    name = _NAMED.get(cp)
    if name is not None:
        return f"<{name}>"
    return f"<U+{cp:04X}>"


def _shown(ch: str) -> str:
    cp = ord(ch)
    if ch in _ESCAPED:
        return _ESCAPED[ch]
    if is_hidden(ch) or VS_FIRST <= cp <= VS_LAST or VS_SUP_FIRST <= cp <= VS_SUP_LAST:
        return _hidden_token(ch)
    return ch


def visible(text: str, limit: int = 120) -> str:
    """`text` with hidden and control characters made visible (`<U+200B>`, `<ESC>`, `\\n`) and
    long space runs shortened (`<40 spaces>`), cut to about `limit` characters (a cut ends
    with `…`). Safe to print on a terminal: no control character survives."""
    out: list[str] = []
    size = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == " ":
            j = i
            while j < n and text[j] == " ":
                j += 1
            piece = f"<{j - i} spaces>" if j - i >= _SPACE_RUN else " " * (j - i)
            i = j
        else:
            piece = _shown(ch)
            i += 1
        if size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def excerpt(text: str, start: int, end: int, context: int = 30, limit: int = 120) -> str:
    """A short visible piece of `text` around [start, end), marked with `…` where it is cut."""
    lo = max(0, start - context)
    hi = min(len(text), max(end, start) + context)
    head = "…" if lo > 0 else ""
    piece = text[lo : min(hi, lo + limit * 2)]
    return head + visible(piece, limit)


def strip_hidden(text: str) -> tuple[str, list[int] | None]:
    """`text` without invisible characters (so `ig<U+200B>nore` matches `ignore`), and the map
    from each index of the stripped text to its index in `text` (None when nothing was
    stripped, i.e. offsets are the same)."""
    if text.isascii() and text.isprintable():
        return text, None
    kept: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        cp = ord(ch)
        if (
            cp in ZERO_WIDTH
            or cp in BIDI
            or cp == 0xAD  # soft hyphen
            or TAG_FIRST <= cp <= TAG_LAST
            or VS_SUP_FIRST <= cp <= VS_SUP_LAST
            or (cp > 0x9F and not ch.isprintable() and unicodedata.category(ch) == "Cf")
        ):
            continue
        kept.append(ch)
        where.append(i)
    if len(kept) == len(text):
        return text, None
    where.append(len(text))
    return "".join(kept), where


def tag_text(text: str) -> str:
    """The ASCII that Unicode tag characters in `text` spell (U+E0041 is a hidden `A`)."""
    return "".join(
        chr(ord(ch) - TAG_FIRST) for ch in text if TAG_FIRST + 0x20 <= ord(ch) <= TAG_FIRST + 0x7E
    )
