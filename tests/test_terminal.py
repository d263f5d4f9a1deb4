"""Hostile names are shown as what they are: km status, doctor, setup and sync never crash on
rich markup and never write a control sequence from captured data to the terminal."""

from __future__ import annotations

import io
import json
import subprocess

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from km.terminal import safe, visible
from tests.conftest import KM

MESSAGE = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
TITLE = "\x1b]0;pwned\x07"
HOSTILE = ["[/bogus]", f"srv{TITLE}", "[bold red]x[/]", "a\u202etxt.exe", "tab\there"]


def rendered(text: str) -> str:
    out = io.StringIO()
    Console(file=out, width=10_000, emoji=False, highlight=False).print(text, end="")
    return out.getvalue()


@given(st.text(alphabet=st.sampled_from(list("[]\\/ab@#x= "))) | st.text())
def test_rich_prints_safe_text_exactly_as_visible_text(text: str) -> None:
    # alone, inside markup (backslashes must not escape the next tag) and before plain text
    assert rendered(safe(text)) == visible(text)
    assert rendered(f"[bold]{safe(text)}[/bold]") == visible(text)
    assert rendered(f"a {safe(text)} b") == f"a {visible(text)} b"


@given(st.text())
def test_visible_text_has_no_control_characters(text: str) -> None:
    shown = visible(text)
    assert all(ch.isprintable() or ch == " " for ch in shown), shown
    assert visible(shown) == shown


def test_examples() -> None:
    assert safe(TITLE) == "\\x1b]0;pwned\\x07"
    assert rendered(safe("[/bogus]")) == "[/bogus]"
    assert safe("[/bogus]", markup=False) == "[/bogus]"
    assert safe("a\u202eb") == "a\\u202eb"
    assert safe("plain name") == "plain name"


def test_km_status_shows_hostile_server_names(km_env: dict[str, str]) -> None:
    for name in HOSTILE:
        run = subprocess.run(
            [*KM, "--name", name, "cat"], input=MESSAGE, capture_output=True, env=km_env, timeout=60
        )
        assert run.returncode == 0 and run.stdout == MESSAGE
    result = subprocess.run(
        [*KM, "status"], capture_output=True, env={**km_env, "COLUMNS": "400"}, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "[/bogus]" in out
    assert "srv\\x1b]0;pwned\\x07" in out
    assert "[bold red]x[/]" in out
    assert "tab\\x09here" in out
    # the JSON view keeps the names exactly (JSON escapes them)
    shown = subprocess.run([*KM, "status", "--json"], capture_output=True, env=km_env, timeout=60)
    names = {s["server"] for s in json.loads(shown.stdout)["sessions"]}
    assert names == set(HOSTILE)


def test_an_unknown_command_with_control_characters_is_shown_escaped(
    km_env: dict[str, str],
) -> None:
    result = subprocess.run(
        [*KM, f"nosuch{TITLE}"], input=b"", capture_output=True, env=km_env, timeout=60
    )
    assert result.returncode == 127
    assert b"\x1b" not in result.stderr and b"\x07" not in result.stderr
    assert b"nosuch\\x1b]0;pwned\\x07" in result.stderr
