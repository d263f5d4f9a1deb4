"""The Windows user PATH, which is install.ps1's launcher: it writes no shim, it puts
`PREFIX\\<version>` itself on the user PATH (HKCU\\Environment `Path`), and MCP clients run the
bare `km` from there. Switching versions is replacing that entry.

`switched_path` and `versions_on_path` are pure (a `;`-separated value in, a value out);
`registry_user_path` is the only I/O and exists only on Windows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

from km.update.switch import UpdateError

BROADCAST_TIMEOUT_MS = 1000  # per top-level window, as .NET's SetEnvironmentVariable waits


class UserPath(Protocol):
    """Where the user PATH is kept: the registry on Windows."""

    def read(self) -> str: ...

    def write(self, value: str) -> None: ...

    def expand(self, entry: str) -> str:
        """An entry with its %VARIABLES% expanded (a REG_EXPAND_SZ value keeps them)."""
        ...


def _key(path: str) -> str:
    """A path as Windows compares them: either slash, no trailing one, any case."""
    return path.replace("/", "\\").rstrip("\\").casefold()


def _under(entry: str, prefix: str) -> bool:
    return _key(entry).startswith(_key(prefix) + "\\")


def _as_is(entry: str) -> str:
    return entry


def _entries(value: str) -> list[str]:
    return [entry for entry in value.split(";") if entry]


def versions_on_path(value: str, prefix: str, expand: Callable[[str], str] = _as_is) -> set[str]:
    """The folder names of the `PREFIX\\<version>` entries in a user PATH value."""
    found = set()
    for entry in _entries(value):
        full = expand(entry)
        if _under(full, prefix):
            found.add(full.replace("/", "\\").rstrip("\\").rsplit("\\", 1)[-1])
    return found


def switched_path(
    value: str, prefix: str, target: str, expand: Callable[[str], str] = _as_is
) -> str:
    """`value` with its `PREFIX\\...` entries replaced by `target`, as install.ps1 does (empty
    entries dropped, other entries as they were). The first such entry is replaced in place,
    so km keeps its place before or after another km on PATH; with none, `target` is appended
    (install.ps1 appends always)."""
    out: list[str] = []
    placed = False
    for entry in _entries(value):
        full = expand(entry)
        if _under(full, prefix) or _key(full) == _key(target):
            if not placed:
                out.append(target)
                placed = True
            continue
        out.append(entry)
    if not placed:
        out.append(target)
    return ";".join(out)


def registry_user_path() -> UserPath:
    """HKCU\\Environment `Path`, as install.ps1 reads and writes it."""
    if sys.platform == "win32":
        return _RegistryUserPath()
    raise UpdateError("install.ps1's km is updated on Windows (its user PATH is there)")


if sys.platform == "win32":
    import ctypes
    import winreg
    from ctypes import wintypes

    class _RegistryUserPath:
        """The value's type is kept (REG_EXPAND_SZ stays so: its %VARIABLES% survive), and
        running programs are told the environment changed (WM_SETTINGCHANGE "Environment"),
        as .NET's SetEnvironmentVariable does for install.ps1."""

        def read(self) -> str:
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, "Environment") as key:
                    value, _ = winreg.QueryValueEx(key, "Path")
            except FileNotFoundError:
                return ""
            except OSError as exc:
                raise UpdateError(f"cannot read your user PATH: {exc.strerror or exc}") from None
            return str(value)

        def write(self, value: str) -> None:
            access = winreg.KEY_QUERY_VALUE | winreg.KEY_SET_VALUE
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, "Environment", 0, access) as key:
                    try:
                        kind = winreg.QueryValueEx(key, "Path")[1]
                    except FileNotFoundError:
                        kind = winreg.REG_EXPAND_SZ
                    winreg.SetValueEx(key, "Path", 0, kind, value)
            except OSError as exc:
                raise UpdateError(f"cannot change your user PATH: {exc.strerror or exc}") from None
            _broadcast_environment_change()

        def expand(self, entry: str) -> str:
            return winreg.ExpandEnvironmentStrings(entry)

    def _broadcast_environment_change() -> None:
        send = ctypes.windll.user32.SendMessageTimeoutW
        send.argtypes = [
            wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPCWSTR,
            wintypes.UINT, wintypes.UINT, ctypes.POINTER(ctypes.c_size_t),
        ]  # fmt: skip
        send.restype = wintypes.LPARAM
        hwnd_broadcast, wm_settingchange, smto_abortifhung = 0xFFFF, 0x001A, 0x0002
        result = ctypes.c_size_t()
        send(
            hwnd_broadcast, wm_settingchange, 0, "Environment", smto_abortifhung,
            BROADCAST_TIMEOUT_MS, ctypes.byref(result),
        )  # fmt: skip
