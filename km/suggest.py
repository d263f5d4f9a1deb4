""""Did you mean" for a first word that is neither a km command nor a program (sans-IO)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

CUTOFF = 0.6  # difflib's similarity ratio: `stauts`/`status` 0.83, `sink`/`sync` 0.5


def closest(word: str, commands: Sequence[str]) -> str | None:
    """The km command `word` most likely misspells, or None when none is close."""
    found = difflib.get_close_matches(word.lower(), commands, n=1, cutoff=CUTOFF)
    return found[0] if found else None


def not_a_command(word: str, commands: Sequence[str], *, first: bool = True) -> str:
    """The hint appended to "command not found" for the server command `word`: the first word
    of `km WORD ...`, or (not `first`) one that came after km options."""
    if not first:
        if word in commands:
            return f"; `{word}` is a km command: put it first (`km {word} ...`)"
        return ""
    match = closest(word, commands)
    if match is None:
        return ""
    return (
        f"; did you mean `km {match}`? (a server command named {word} runs when it is on "
        f"PATH, or after `km --`)"
    )
