"""`km update` for a km that install.ps1 installed: the real switch code (`km.update.cli.update`
with the installer-windows method) over a tree laid out as install.ps1 lays it out under
tmp_path, against a loopback release server. The archives are zips as the Windows release's, whose
`km.exe` is a shell script here (it only has to say its version, as install.ps1 checks).

The user PATH, install.ps1's launcher, lives in the Windows registry, which does not exist here:
`Store` keeps it in memory, and the tests resolve `km.exe` through it as a client's PATH lookup
does. winpath.py's registry shell is type-checked (`mypy --platform win32`), not run here.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import stat
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from km import __version__
from km.installation import Installation
from km.update import windows
from km.update.cli import EXIT_NEWER, update
from km.update.release import archive_name, platform_name
from km.update.switch import UpdateError
from km.update.winpath import switched_path, versions_on_path

NEWER = "99.0.0"
OTHER_ENTRIES = ("C:\\Windows\\system32", "%USERPROFILE%\\bin")
TIMEOUT_S = 30


@dataclass
class Store:
    """HKCU\\Environment `Path`, in memory."""

    value: str
    writes: list[str] = field(default_factory=list)
    refuse: bool = False

    def read(self) -> str:
        return self.value

    def write(self, value: str) -> None:
        if self.refuse:
            raise UpdateError("cannot change your user PATH: Access is denied")
        self.writes.append(value)
        self.value = value

    def expand(self, entry: str) -> str:
        return entry.replace("%USERPROFILE%", "C:\\Users\\u")


@dataclass
class Ps1Install:
    prefix: Path
    store: Store
    tmp: Path  # the temporary directory km update works in

    @property
    def running(self) -> Installation:
        return Installation("installer-windows", str(self.prefix / __version__ / "km.exe"), "km")

    def km_on_path(self) -> Path:
        """The km.exe a client finds through the user PATH (the first folder that has one)."""
        for entry in self.store.value.split(";"):
            if (Path(entry) / "km.exe").is_file():
                return Path(entry) / "km.exe"
        raise AssertionError(f"no km.exe on {self.store.value!r}")


def km_exe(version: str) -> bytes:
    return f"#!/bin/sh\necho 'km {version}'\n".encode()


def lay_out_version(folder: Path, version: str) -> None:
    """One version as install.ps1 leaves it: the archive's top folder, renamed."""
    (folder / "_internal").mkdir(parents=True)
    (folder / "km.exe").write_bytes(km_exe(version))
    (folder / "km.exe").chmod(0o755)
    (folder / "_internal" / "base_library.zip").write_bytes(b"PK" + version.encode() * 100)


@pytest.fixture
def ps1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ps1Install:
    """%LOCALAPPDATA%\\Programs\\km\\<this version>, on the user PATH between two others."""
    prefix = tmp_path / "LocalAppData" / "Programs" / "km"
    lay_out_version(prefix / __version__, __version__)
    store = Store(";".join([OTHER_ENTRIES[0], str(prefix / __version__), OTHER_ENTRIES[1]]))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # to see it left empty
    return Ps1Install(prefix, store, tmp_path / "tmp")


def publish(www: Path, version: str, says: str | None = None) -> Path:
    """km-<version>-windows-<arch>.zip (km.exe recorded as 0755, as a zip made on Unix would)
    and its SHA256SUMS line."""
    here = platform_name("win32", platform.machine())
    assert here is not None
    name = archive_name(version, here)
    top = name.removesuffix(".zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        exe = zipfile.ZipInfo(f"{top}/km.exe")
        exe.external_attr = (stat.S_IFREG | 0o755) << 16
        z.writestr(exe, km_exe(says or version))
        z.writestr(f"{top}/_internal/base_library.zip", os.urandom(200_000))
    archive = www / name
    archive.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (www / "SHA256SUMS").write_text(f"{digest}  {name}\n")
    return archive


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with its kind, mode and content."""
    found: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), info.st_mode, content)
    return found


def run(ps1: Ps1Install, base: str, check: bool = False) -> int:
    environ = {"KM_INSTALL_BASE_URL": base}
    return update(ps1.running, environ, check=check, user_path=ps1.store)


def run_km(exe: Path) -> str:
    done = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    return done.stdout.strip()


def test_update_switches_the_user_path_to_the_new_version(
    ps1: Ps1Install, release_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    www, base = release_dir
    publish(www, NEWER)
    leftover = ps1.prefix / ".new-4242"  # an install.ps1 that was interrupted
    leftover.mkdir()

    assert run(ps1, base) == 0
    out = capsys.readouterr().out
    new = ps1.prefix / NEWER
    assert f"km {__version__} -> {NEWER} ({new / 'km.exe'}" in out
    assert run_km(ps1.km_on_path()) == f"km {NEWER}"
    assert ps1.km_on_path() == new / "km.exe"
    # In place of the old entry; the others as they were (%USERPROFILE% still unexpanded).
    assert ps1.store.writes == [";".join([OTHER_ENTRIES[0], str(new), OTHER_ENTRIES[1]])]
    # The running version stays (Windows would not delete it) and says so; the leftover goes.
    assert sorted(p.name for p in ps1.prefix.iterdir()) == sorted([__version__, NEWER])
    assert run_km(ps1.prefix / __version__ / "km.exe") == f"km {__version__}"
    assert f"removed {leftover}" in out
    assert f"{ps1.prefix / __version__} stays while this km runs from it" in out
    assert list(ps1.tmp.iterdir()) == []


def test_check_says_what_is_newer_and_changes_nothing(
    ps1: Ps1Install, release_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    www, base = release_dir
    publish(www, NEWER)
    before, path_before = tree(ps1.prefix), ps1.store.value
    assert run(ps1, base, check=True) == EXIT_NEWER
    assert capsys.readouterr().out == (
        f"km {NEWER} is available (this is km {__version__}): km update\n"
    )
    assert (tree(ps1.prefix), ps1.store.value, ps1.store.writes) == (before, path_before, [])


def assert_refused(ps1: Ps1Install, base: str, message: str) -> None:
    before, path_before = tree(ps1.prefix), ps1.store.value
    with pytest.raises(UpdateError) as refused:
        run(ps1, base)
    text = str(refused.value)
    assert message in text and f"km {__version__} is unchanged" in text and "\n" not in text
    assert (tree(ps1.prefix), ps1.store.value, ps1.store.writes) == (before, path_before, [])
    assert run_km(ps1.km_on_path()) == f"km {__version__}"
    assert list(ps1.tmp.iterdir()) == []


def test_a_tampered_archive_leaves_the_install_as_it_was(
    ps1: Ps1Install, release_dir: tuple[Path, str]
) -> None:
    www, base = release_dir
    archive = publish(www, NEWER)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    assert_refused(ps1, base, "checksum mismatch")


def test_a_server_that_goes_away_mid_download_leaves_the_install_as_it_was(
    ps1: Ps1Install, release_dir: tuple[Path, str], cut_off_release: str
) -> None:
    www, _ = release_dir
    publish(www, NEWER)
    assert_refused(ps1, cut_off_release, "was cut off after")


def test_a_build_that_says_another_version_is_refused(
    ps1: Ps1Install, release_dir: tuple[Path, str]
) -> None:
    www, base = release_dir
    publish(www, NEWER, says="0.0.1")
    assert_refused(ps1, base, f"says 'km 0.0.1', expected 'km {NEWER}'")


def test_a_failed_path_switch_keeps_the_old_km_and_a_retry_completes(
    ps1: Ps1Install, release_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    www, base = release_dir
    publish(www, NEWER)
    ps1.store.refuse = True
    with pytest.raises(UpdateError, match=f"Access is denied; km {__version__} is unchanged"):
        run(ps1, base)
    assert run_km(ps1.km_on_path()) == f"km {__version__}"
    assert (ps1.prefix / NEWER).is_dir()  # placed, not named by PATH: replaced by the retry

    ps1.store.refuse = False
    (ps1.prefix / NEWER / "km.exe").write_bytes(b"half written")
    assert run(ps1, base) == 0
    assert run_km(ps1.km_on_path()) == f"km {NEWER}"
    assert sorted(p.name for p in ps1.prefix.iterdir()) == sorted([__version__, NEWER])
    capsys.readouterr()


def test_the_next_update_removes_what_no_km_runs_from(
    ps1: Ps1Install, release_dir: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    www, base = release_dir
    lay_out_version(ps1.prefix / "0.0.9", "0.0.9")  # switched away from earlier
    (ps1.prefix / ".old-77").mkdir()
    (ps1.prefix / "notes").mkdir()  # not km's: left alone
    publish(www, __version__)
    assert run(ps1, base) == 0
    out = capsys.readouterr().out
    assert "is the newest: nothing to do" in out and "removed" in out
    assert sorted(p.name for p in ps1.prefix.iterdir()) == [__version__, "notes"]
    assert ps1.store.writes == []


def test_clean_keeps_the_running_version_and_the_one_on_path(tmp_path: Path) -> None:
    prefix = tmp_path / "km"
    for version in ("0.1.0", "0.2.0", "0.3.0"):
        lay_out_version(prefix / version, version)
    layout = windows.WindowsLayout.of(str(prefix / "0.2.0" / "km.exe"))
    assert (layout.prefix, layout.running) == (str(prefix), "0.2.0")
    store = Store(f"{prefix / '0.3.0'};C:\\bin")
    done = windows.clean(layout, windows.to_keep(layout, store.value, store))
    assert (done.removed, done.kept) == ((str(prefix / "0.1.0"),), ())
    assert sorted(p.name for p in prefix.iterdir()) == ["0.2.0", "0.3.0"]


PS1 = "C:\\Users\\u\\AppData\\Local\\Programs\\km"


@pytest.mark.parametrize(
    ("before", "after"),
    [(f"C:\\bin;{PS1}\\0.1.0;D:\\x", f"C:\\bin;{PS1}\\0.2.0;D:\\x"),
     (f"{PS1}\\0.1.0\\;;C:\\bin;{PS1.upper()}\\0.0.9", f"{PS1}\\0.2.0;C:\\bin"),
     ("C:\\bin;%USERPROFILE%\\bin", f"C:\\bin;%USERPROFILE%\\bin;{PS1}\\0.2.0"),
     ("", f"{PS1}\\0.2.0"),
     ("%LOCALAPPDATA%\\Programs\\km\\0.1.0;C:\\bin", f"{PS1}\\0.2.0;C:\\bin"),
     (f"C:\\Programs\\km\\0.1.0;{PS1}", f"C:\\Programs\\km\\0.1.0;{PS1};{PS1}\\0.2.0")],
)  # fmt: skip
def test_switched_path(before: str, after: str) -> None:
    def expand(entry: str) -> str:
        return entry.replace("%LOCALAPPDATA%", "C:\\Users\\u\\AppData\\Local")

    assert switched_path(before, PS1, f"{PS1}\\0.2.0", expand) == after
    assert switched_path(after, PS1, f"{PS1}\\0.2.0", expand) == after  # a second run: as is


def test_versions_on_path_and_what_clean_may_remove() -> None:
    value = f"{PS1}\\0.1.0;c:/users/u/appdata/local/programs/km/0.2.0/;{PS1}x\\0.3.0"
    assert versions_on_path(value, PS1) == {"0.1.0", "0.2.0"}
    names = ["0.1.0", "0.2.0", "v0.0.9", "1.0.0rc1", ".new-12", ".old-3", "notes", ".cache"]
    assert windows.removable(names, {"0.2.0"}) == [
        ".new-12",
        ".old-3",
        "0.1.0",
        "1.0.0rc1",
        "v0.0.9",
    ]
