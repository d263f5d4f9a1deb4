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

# Each `[` with the backslashes before it; `tag` when rich would read it as the start of a
# tag (`[bold]`, `[/]`, `[/bogus]`, `[@click]`).
_NO_OP_TAGS = "[not dim][/not dim]"  # styles nothing; ends a run of backslashes for rich
_BRACKET = re.compile(r"(\\*)\[(?P<tag>(?=[a-zA-Z#/@][^\[]*?\]))?")


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
    """`text` for rich markup, printed as it is: what `rich.markup.escape` does (a backslash
    before each `[` that would open a tag, the backslashes before it doubled), and one more
    backslash before a `[` that follows backslashes (rich reads `\\[` in plain text as `[`)."""

    def repl(match: re.Match[str]) -> str:
        backslashes = match.group(1)
        if match.group("tag") is not None:
            return f"{backslashes}{backslashes}\\["
        return f"{backslashes}\\[" if backslashes else "["

    text = _BRACKET.sub(repl, text)
    trailing = len(text) - len(text.rstrip("\\"))
    if trailing:  # rich halves a run of backslashes before a tag: double it, end it with an
        text += "\\" * trailing + _NO_OP_TAGS  # empty tag pair, whatever follows in the markup
    return text


def safe(text: object, *, markup: bool = True) -> str:
    """`text` (any value, shown with `str`) ready for a terminal: control and invisible
    characters made visible, and, unless `markup=False` (plain output), rich markup escaped."""
    shown = visible(text if isinstance(text, str) else str(text))
    return escape_markup(shown) if markup else shown
