"""km/__main__.py: leaving with os._exit must not lose what a command wrote to stdout."""

from __future__ import annotations

import os
import subprocess
import sys

from km import __version__


def test_output_to_a_pipe_survives_the_fast_exit() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-m", "km", "--version"], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0
    assert done.stdout == f"km {__version__}\n".encode()
