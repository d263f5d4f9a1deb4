"""The one-pass needle finder (RE2 `Set`) against the reference `in` loop: the same needles,
overlapping and nested ones included, for any bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.redact.needles import loop_finder, needle_finder
from km.redact.rules import DEFAULT_RULES

NEEDLES = sorted(DEFAULT_RULES.compiled.text.everything.needles)
# Bytes made of the needles' own characters, so that random text holds needles often.
ALPHABET = sorted({c for n in NEEDLES for c in n.encode()} | {ord(" "), 0xC3, 0xA9, 0xFF})


def test_re2_is_the_finder_here() -> None:
    pytest.importorskip("re2")
    finder = needle_finder(NEEDLES)
    assert finder.__qualname__.startswith("_re2_finder")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"nothing here", []),
        (b"akiapi private key", ["akia", "api", "private", "private key"]),  # overlapping, nested
        (b"ghp_ghs_xoxb", ["ghp_", "ghs_", "xox"]),
        (b"x" * 70_000 + b"@", ["@"]),  # at the far end of a large payload
        (b"", []),
    ],
)
def test_examples(text: bytes, expected: list[str]) -> None:
    assert sorted(needle_finder(NEEDLES)(text)) == expected
    assert sorted(loop_finder(NEEDLES)(text)) == expected


@given(st.lists(st.sampled_from(ALPHABET), max_size=400).map(bytes))
def test_same_needles_as_the_loop(text: bytes) -> None:
    assert sorted(needle_finder(NEEDLES)(text)) == sorted(loop_finder(NEEDLES)(text))


@given(st.lists(st.sampled_from([*NEEDLES, "zz", " "]), max_size=30).map("".join))
def test_same_needles_in_needle_soup(text: str) -> None:
    data = text.encode()
    assert sorted(needle_finder(NEEDLES)(data)) == sorted(loop_finder(NEEDLES)(data))


def test_non_ascii_needles_use_the_loop() -> None:
    finder = needle_finder(["contraseña", "token"])
    assert sorted(finder("la contraseña y el token".encode())) == ["contraseña", "token"]
    assert finder(b"nada") == []
