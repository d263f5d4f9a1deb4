"""Wrapping a command line with km and unwrapping it (pure functions)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from km.setup.wrap import is_km, is_wrapped, unwrap, wrap, wrapped_name

WORDS = st.text(min_size=1)


@given(WORDS, WORDS, st.lists(st.text()), st.sampled_from(["km", "/opt/km/km", r"C:\km\km.exe"]))
def test_unwrap_gives_back_what_was_wrapped(
    name: str, command: str, args: list[str], km: str
) -> None:
    wrapped_command, wrapped_args = wrap(name, command, args, km)
    assert is_wrapped(wrapped_command, wrapped_args)
    assert wrapped_name(wrapped_command, wrapped_args) == name
    assert unwrap(wrapped_command, wrapped_args) == (command, args)


def test_the_wrapped_line_runs_km_with_the_name_then_the_server() -> None:
    assert wrap("github", "npx", ["-y", "server-github"], "/bin/km") == (
        "/bin/km",
        ["--name", "github", "--", "npx", "-y", "server-github"],
    )


def test_only_the_exact_shape_is_unwrapped() -> None:
    assert unwrap("km", ["npx", "-y", "x"]) is None  # written by hand: left alone
    assert unwrap("km", ["--name", "x", "npx"]) is None
    assert unwrap("npx", ["--name", "x", "--", "y"]) is None
    assert unwrap("km", ["--name", "x", "--"]) is None


def test_km_is_recognised_by_its_file_name() -> None:
    assert is_km("km") and is_km("/usr/local/bin/km") and is_km(r"C:\Tools\KM.EXE")
    assert not is_km("kmx") and not is_km("/km/npx")
