"""`km update` for a km that install.sh did not install (here: this venv's km, the `python`
method): it names the command that upgrades it, and `--check` reports through its exit code.
The release is served from 127.0.0.1 (conftest.py's release_dir)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from km import __version__
from km.update.release import archive_name, platform_name

KM = str(Path(sys.executable).parent / "km")
TIMEOUT_S = 60


def km_update(tmp_path: Path, base: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env.update(HOME=str(tmp_path), KM_INSTALL_BASE_URL=base)
    return subprocess.run(
        [KM, "update", *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def publish(www: Path, version: str) -> None:
    here = platform_name(sys.platform, platform.machine())
    assert here is not None
    (www / "SHA256SUMS").write_text(f"{'0' * 64}  {archive_name(version, here)}\n")


def test_another_install_method_gets_its_upgrade_command(
    tmp_path: Path, release_dir: tuple[Path, str]
) -> None:
    www, base = release_dir
    publish(www, "99.0.0")
    done = km_update(tmp_path, base, "--check")
    assert done.returncode == 100, done.stderr
    assert f"km 99.0.0 is available (this is km {__version__})" in done.stdout
    done = km_update(tmp_path, base)
    assert done.returncode == 0, done.stderr
    assert "installed with pip" in done.stdout
    assert done.stdout.rstrip().endswith("python -m pip install --upgrade kilometers")

    publish(www, __version__)
    done = km_update(tmp_path, base, "--check")
    assert (done.returncode, done.stderr) == (0, "")
    assert f"km {__version__} is the newest" in done.stdout


def test_a_release_without_this_platform_or_with_bad_sums_is_one_line(
    tmp_path: Path, release_dir: tuple[Path, str]
) -> None:
    www, base = release_dir
    (www / "SHA256SUMS").write_text(f"{'0' * 64}  km-99.0.0-plan9-mips.tar.gz\n")
    done = km_update(tmp_path, base)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "has no km build for this machine" in done.stderr
    (www / "SHA256SUMS").write_text("<html>not found</html>\n")
    done = km_update(tmp_path, base, "--check")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "SHA256SUMS line 1" in done.stderr
