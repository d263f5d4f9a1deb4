"""A temporary HOME for `km setup` and `km doctor`, and the real `km` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KM_SCRIPT = str(Path(sys.executable).parent / "km")
RUN_TIMEOUT_S = 60


class Home:
    """A user's home directory with its own environment; `km(...)` runs the real km in it."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.project = root / "project"
        self.project.mkdir()

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        return path

    def km(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KM_SCRIPT, *args], input=stdin.decode(), capture_output=True, text=True,
            env=self.env, cwd=self.project, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        return result


@pytest.fixture
def home(tmp_path: Path) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KM_", "CLAUDE_"))}
    env["HOME"] = str(root)
    env["KM_CONFIG"] = str(tmp_path / "km-config.toml")  # never the developer's own config
    env["KM_SPOOL"] = str(tmp_path / "spool.db")
    env["KM_GRACE"] = "0.3"
    return Home(root, env)
