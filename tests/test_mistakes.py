"""The mistakes people make on km's command line, with the real km: a mistyped command gets
"did you mean" (while a server of that name still runs), `km login --key` says where the key
comes from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from km.cli import COMMANDS
from km.suggest import closest, not_a_command

KM = str(Path(sys.executable).parent / "km")
TIMEOUT_S = 60


def km(
    tmp_path: Path, *args: str, path: str | None = None, stdin: str = ""
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env.update(HOME=str(tmp_path), KM_SPOOL=str(tmp_path / "spool.db"), KM_GRACE="0.3")
    env["KM_CONFIG"] = str(tmp_path / "config.toml")
    if path is not None:
        env["PATH"] = path
    done = subprocess.run(
        [KM, *args], input=stdin, capture_output=True, text=True, env=env, timeout=TIMEOUT_S
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    ("word", "expected"),
    [("stauts", "status"), ("sevre", "serve"), ("setpu", "setup"), ("docter", "doctor"),
     ("updaet", "update"), ("npx", None), ("uvx", None), ("cat", None), ("python", None)],
)  # fmt: skip
def test_closest_km_command(word: str, expected: str | None) -> None:
    assert closest(word, COMMANDS) == expected
    assert bool(not_a_command(word, COMMANDS)) == (expected is not None)


def test_a_mistyped_command_gets_did_you_mean(tmp_path: Path) -> None:
    code, out, err = km(tmp_path, "stauts")
    assert code == 127 and out == ""
    assert err.count("\n") == 1, err
    assert "did you mean `km status`?" in err and "Traceback" not in err
    code, _, err = km(tmp_path, "frobnicate-zz")
    assert code == 127 and "did you mean" not in err


def test_a_server_named_like_a_typo_still_runs(tmp_path: Path) -> None:
    """`stauts` on PATH is a server command: forwarded as always, no hint, its own exit code."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    server = bin_dir / "stauts"
    server.write_text("#!/bin/sh\ncat\nexit 3\n")
    server.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    code, out, err = km(tmp_path, "stauts", path=path, stdin='{"jsonrpc":"2.0","id":1}\n')
    assert (code, out) == (3, '{"jsonrpc":"2.0","id":1}\n'), err
    assert "did you mean" not in err
    # After `--` the word is always the server's, and a missing one is just not found.
    code, out, err = km(tmp_path, "--", "stauts", path=path, stdin="x\n")
    assert (code, out) == (3, "x\n"), err
    code, _, err = km(tmp_path, "--", "stauts", stdin="x\n")
    assert code == 127 and "did you mean" not in err


def test_login_with_a_key_flag_says_where_the_key_comes_from(tmp_path: Path) -> None:
    for flag in (["--key", "abc"], ["--key=abc"], ["--api-key", "abc"]):
        code, out, err = km(tmp_path, "login", "--url", "http://127.0.0.1:9", *flag)
        assert code == 2 and out == ""
        assert err.count("\n") == 1, err
        assert "read from stdin or a hidden prompt" in err and "| km login" in err
    assert not (tmp_path / "config.toml").exists()


def test_a_km_command_after_km_options_says_to_put_it_first(tmp_path: Path) -> None:
    code, _, err = km(tmp_path, "--spool", str(tmp_path / "s.db"), "status")
    assert code == 127 and err.count("\n") == 1, err
    assert "`status` is a km command: put it first" in err
