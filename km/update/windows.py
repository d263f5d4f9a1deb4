"""Switching a km that install.ps1 installed, the way install.ps1 does, as plain file
operations (the user PATH, the one Windows-only part, is behind `winpath.UserPath`).

install.ps1's layout: each version is the unpacked `km-<version>-windows-amd64` folder (km.exe
and `_internal\\`) at `PREFIX\\<version>`, PREFIX = `%LOCALAPPDATA%\\Programs\\km` (or -Prefix); no
shim: `PREFIX\\<version>` itself is on the user PATH. The switch: the archive is downloaded,
checked against SHA256SUMS, unpacked and run (`km.exe --version`) in a temporary folder, moved to
`PREFIX\\.new-<pid>`, renamed to `PREFIX\\<version>` (a folder already there is renamed out of the
way first and put back on failure), and then the user PATH entry is switched to it. Until that
last write the user PATH names the old version, whose folder is untouched: a failed or
interrupted update leaves a working km.

Windows does not delete or overwrite a program while it runs (it can only rename it), and the
km doing the update runs from `PREFIX\\<old version>`. So old versions are not removed while they
run: `clean` (after the switch, and at every later `km update`) removes the versions that are
neither running nor on the user PATH, each renamed out of the way first. A folder with a running
km in it cannot be renamed (MS-FSA 2.1.5.15.12: a directory with an open file below it is not
renamed, ACCESS_DENIED), so it is kept and listed, never half deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from km.update.release import Candidate, parse_version
from km.update.switch import UpdateError, fetch_verified
from km.update.winpath import UserPath, switched_path, versions_on_path

PROGRAM = "km.exe"
STAGE = ".new-"  # install.ps1's names for a version being placed and one being replaced
OLD = ".old-"


@dataclass(frozen=True, slots=True)
class WindowsLayout:
    """install.ps1's PREFIX, and the version folder the running km.exe is in."""

    prefix: str
    running: str

    @classmethod
    def of(cls, executable: str) -> WindowsLayout:
        """From the running `PREFIX\\<version>\\km.exe`."""
        folder = os.path.dirname(os.path.abspath(executable))
        return cls(os.path.dirname(folder), os.path.basename(folder))

    def folder(self, version: str) -> str:
        return os.path.join(self.prefix, version)

    def program(self, version: str) -> str:
        return os.path.join(self.prefix, version, PROGRAM)


@dataclass(frozen=True, slots=True)
class Cleaned:
    """What `clean` did: folders removed, and folders kept (a km runs from them)."""

    removed: tuple[str, ...]
    kept: tuple[str, ...]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def install(base: str, candidate: Candidate, layout: WindowsLayout, user_path: UserPath) -> str:
    """Download, verify and switch `layout` to `candidate`; return the new km.exe."""
    if not os.path.isfile(layout.program(layout.running)):
        raise UpdateError(
            f"{layout.program(layout.running)} is not where install.ps1 puts km: re-run install.ps1"
        )
    work = tempfile.mkdtemp(prefix="km-update-")
    stage = ""
    try:
        top = fetch_verified(base, candidate, work, PROGRAM)
        stage = os.path.join(layout.prefix, f"{STAGE}{os.getpid()}")
        shutil.rmtree(stage, ignore_errors=True)  # a dead update's with the same pid
        try:
            shutil.move(top, stage)  # %TEMP% may be another volume: then a copy
        except OSError as exc:
            raise UpdateError(f"cannot write to {layout.prefix}: {_reason(exc)}") from None
        target = layout.folder(candidate.version)
        _place(layout, stage, target)
        stage = ""
        before = user_path.read()
        after = switched_path(before, layout.prefix, target, user_path.expand)
        if after != before:
            user_path.write(after)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if stage:
            shutil.rmtree(stage, ignore_errors=True)
    return layout.program(candidate.version)


def _place(layout: WindowsLayout, stage: str, target: str) -> None:
    """Rename `stage` to `target`; a folder already at `target` (left by an earlier attempt) is
    renamed out of the way first, put back if the second rename fails, removed after."""
    old = ""
    if os.path.lexists(target):
        old = os.path.join(layout.prefix, f"{OLD}{os.getpid()}")
        try:
            os.rename(target, old)
        except OSError as exc:  # on Windows: a km started from it is running
            raise UpdateError(
                f"cannot replace {target}: {_reason(exc)} (close the km running from it, then "
                "run km update again)"
            ) from None
    try:
        os.rename(stage, target)
    except OSError as exc:
        if old:
            with contextlib.suppress(OSError):  # else `clean` removes it later
                os.rename(old, target)
        raise UpdateError(f"cannot move the new km into {target}: {_reason(exc)}") from None
    if old:
        shutil.rmtree(old, ignore_errors=True)


def to_keep(layout: WindowsLayout, user_path_value: str, user_path: UserPath) -> set[str]:
    """The folders `clean` must leave: the running km's and those the user PATH names."""
    return {layout.running} | versions_on_path(user_path_value, layout.prefix, user_path.expand)


def removable(names: Iterable[str], keep: set[str]) -> list[str]:
    """The folders of PREFIX that `clean` removes: versions not kept, and what an interrupted
    install.ps1 or km update left (`.new-*`, `.old-*`). Anything else is not km's."""
    found = []
    for name in sorted(names):
        if name in keep:
            continue
        if name.startswith((STAGE, OLD)) or parse_version(name.removeprefix("v")) is not None:
            found.append(name)
    return found


def clean(layout: WindowsLayout, keep: set[str]) -> Cleaned:
    """Remove the removable folders, each renamed to `.old-...` first: Windows refuses to rename
    a folder a running program is in, and then it is kept whole (until the next `km update`)."""
    removed: list[str] = []
    kept: list[str] = []
    try:
        names = [n for n in os.listdir(layout.prefix) if os.path.isdir(layout.folder(n))]
    except OSError:
        return Cleaned((), ())
    for name in removable(names, keep):
        path = layout.folder(name)
        trash = path
        if not name.startswith(OLD):
            trash = layout.folder(f"{OLD}{name.lstrip('.')}-{os.getpid()}")
        if trash != path:
            try:
                os.rename(path, trash)
            except OSError:
                kept.append(path)
                continue
        shutil.rmtree(trash, ignore_errors=True)
        (kept if os.path.lexists(trash) else removed).append(path)
    return Cleaned(tuple(removed), tuple(kept))
