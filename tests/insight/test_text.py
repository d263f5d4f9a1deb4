"""visible(), strip_hidden() and tag_text(): hidden characters made visible, stripped with
offsets kept, and tag characters decoded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from km.insight.text import excerpt, is_hidden, strip_hidden, tag_text, visible


def test_visible_names_hidden_and_control_characters() -> None:
    assert visible("a\u200bb") == "a<U+200B>b"
    assert visible("\x1b[31mred\x1b[0m") == "<ESC>[31mred<ESC>[0m"
    assert visible("line\nnext\tcol\r") == "line\\nnext\\tcol\\r"
    assert visible("x\u202ey") == "x<U+202E>y"
    assert visible("\U000e0041") == "<U+E0041>"
    assert visible("\x9b2J") == "<U+009B>2J"
    assert visible("\x00\x07\x08\x7f") == "<NUL><BEL><BS><DEL>"


def test_visible_keeps_ordinary_text_and_emoji() -> None:
    assert visible("héllo — 東京 ✓ 👍") == "héllo — 東京 ✓ 👍"
    assert visible("a b") == "a b"


def test_visible_shortens_space_runs_and_cuts_at_the_limit() -> None:
    assert visible("a" + " " * 40 + "b") == "a<40 spaces>b"
    cut = visible("x" * 500, limit=20)
    assert cut == "x" * 20 + "…"
    assert visible("\u200b" * 50, limit=20) == "<U+200B>" * 2 + "…"  # never half a token


@given(st.text())
def test_visible_output_is_terminal_safe(text: str) -> None:
    shown = visible(text, limit=10_000)
    assert not any(is_hidden(ch) for ch in shown)
    assert "\n" not in shown and "\x1b" not in shown


@given(st.text())
def test_strip_hidden_maps_every_kept_character_back(text: str) -> None:
    plain, where = strip_hidden(text)
    if where is None:
        assert plain == text
        return
    assert len(where) == len(plain) + 1
    assert all(text[where[i]] == plain[i] for i in range(len(plain)))


def test_strip_hidden_removes_invisible_characters() -> None:
    plain, where = strip_hidden("ig\u200bno\u00adre \U000e0041x")
    assert plain == "ignore x"
    assert where is not None and where[2] == 3


def test_tag_text_decodes_tag_characters() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "send keys")
    assert tag_text("ok" + hidden) == "send keys"


def test_excerpt_marks_cuts() -> None:
    text = "a" * 100 + "NEEDLE" + "b" * 100
    shown = excerpt(text, 100, 106, context=5)
    assert shown.startswith("…") and "NEEDLE" in shown
