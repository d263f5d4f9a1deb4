"""Showing captured data on a terminal safely: the one helper every km view uses.

Anything km captured or read from elsewhere (server names, commands, error messages, paths,
tool names, payload excerpts) may hold terminal control sequences (`\\x1b]0;pwned\\x07` retitles
the window, `\\x1b[2J` clears it), characters that reorder or hide text (bidi overrides,
zero-width characters) or rich console markup (`[/bogus]` makes rich raise `MarkupError`).
`safe(text)` makes every such character visible as an escape (`\\x1b`, `\\u202e`) and, for
rich, escapes markup, so the text prints as exactly what it is.

    console.print(f"server {safe(name)}")   # rich markup
    sys.stdout.write(safe(detail, markup=False) + "\\n")   # plain text
"""

from __future__ import annotations

import re

# A `[` that rich would read as the start of a tag: `[bold]`, `[/]`, `[/bogus]`, `[@click]`.
_MARKUP = re.compile(r"(\\*)(\[[a-zA-Z#/@][^[]*?\])")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """`text` with every character Python does not call printable (controls, format
    characters such as bidi overrides and zero-width spaces, separators other than the space,
    unassigned code points, lone surrogates) written as an escape (`\\x1b`, `\\u202e`)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def escape_markup(text: str) -> str:
    """What `rich.markup.escape` does (without importing rich): a backslash before each `[`
    that would open a tag, and doubled backslashes before it kept literal."""

    def repl(match: re.Match[str]) -> str:
        backslashes, tag = match.groups()
        return f"{backslashes}{backslashes}\\{tag}"

    text = _MARKUP.sub(repl, text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "\\"  # a trailing backslash would escape whatever rich appends
    return text


def safe(text: object, *, markup: bool = True) -> str:
    """`text` (any value, shown with `str`) ready for a terminal: control and invisible
    characters made visible, and, unless `markup=False` (plain output), rich markup escaped."""
    shown = visible(text if isinstance(text, str) else str(text))
    return escape_markup(shown) if markup else shown
