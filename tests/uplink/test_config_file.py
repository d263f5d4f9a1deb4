"""Config file edits: only the changed keys' lines change; written atomically, 0600 in 0700."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.uplink.config_file import (
    ConfigUnreadable,
    edit_toml,
    toml_value,
    update_config,
    write_private,
)

ORIGINAL = """\
# my km settings
api_url = "http://old"   # staging
name = "github"

max_payload = 65536
"""


def test_set_and_unset_keep_comments_and_order() -> None:
    out = edit_toml(ORIGINAL, {"api_url": "https://api.example.com", "api_key": "km_live_x"})
    assert out == (
        "# my km settings\n"
        'api_url = "https://api.example.com"\n'
        'name = "github"\n'
        "\n"
        "max_payload = 65536\n"
        'api_key = "km_live_x"\n'
    )
    assert edit_toml(out, {"api_key": None, "nothing": None}) == (
        '# my km settings\napi_url = "https://api.example.com"\nname = "github"\n\n'
        "max_payload = 65536\n"
    )


def test_multiline_values_fall_back_to_a_fresh_file() -> None:
    text = 'name = """\nsrv\n"""\napi_url = "x"\n'
    out = edit_toml(text, {"name": "other"})
    assert tomllib.loads(out) == {"name": "other", "api_url": "x"}


def test_quoted_keys_and_empty_files() -> None:
    assert tomllib.loads(edit_toml('"api_url" = "a"\n', {"api_url": "b"})) == {"api_url": "b"}
    assert edit_toml("", {"api_url": "b"}) == 'api_url = "b"\n'
    assert edit_toml("", {"api_url": None}) == ""


def test_unreadable_file_is_never_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("api_url = \n")
    with pytest.raises(ConfigUnreadable, match="fix or remove it"):
        update_config(str(path), {"api_key": "k"})
    assert path.read_text() == "api_url = \n"


@given(st.text())
def test_any_string_round_trips(value: str) -> None:
    assert tomllib.loads(f"k = {toml_value(value)}") == {"k": value}


def test_other_types() -> None:
    assert tomllib.loads(f"a = {toml_value(True)}\nb = {toml_value(3)}\nc = {toml_value(0.5)}")
    assert toml_value(False) == "false"


def test_write_private_modes_and_atomicity(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "dir" / "config.toml"
        write_private(str(path), 'api_key = "secret"\n')
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["config.toml"]  # no temporary file left
    path.chmod(0o644)  # a file the user loosened: rewriting makes it private again
    write_private(str(path), "x = 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "x = 1\n"


def test_update_config_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c" / "config.toml"
    update_config(str(path), {"api_url": "http://h", "api_key": "k"})
    assert tomllib.loads(path.read_text()) == {"api_url": "http://h", "api_key": "k"}
