"""How this km was installed, and the path MCP clients should run it by.

Each install method keeps km in a versioned place and gives it a stable launcher that upgrades
repoint: install.sh `PREFIX/lib/km/<version>/km` behind the link `PREFIX/bin/km`; Homebrew
`Cellar/km/<version>/libexec/km` behind `bin/km`; Scoop `apps/km/<version>/km.exe` behind
`apps/km/current`; install.ps1 `Programs\\km\\<version>\\km.exe`, whose directory it puts on the
user PATH (so the stable launcher is the bare `km`); pipx and uv tool a venv that upgrades keep,
behind `~/.local/bin/km`. A client config must name the launcher: the versioned path is removed
by the next upgrade.

`classify` and `launcher_candidates` are pure (paths in, answers out); `detect` gathers the
facts (sys.executable, sys.prefix, what the candidate links resolve to) and is the only I/O.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Method = Literal["installer", "installer-windows", "homebrew", "scoop", "pipx", "uv", "python"]

PACKAGE = "kilometers"
INSTALL_SH = "curl -fsSL https://raw.githubusercontent.com/kilometers-ai/km/main/install.sh | sh"
INSTALL_PS1 = "irm https://github.com/kilometers-ai/km/releases/latest/download/install.ps1 | iex"
UPGRADE_COMMANDS: dict[Method, str] = {
    "installer": "km update",
    "installer-windows": "km update",
    "homebrew": "brew upgrade km",
    "scoop": "scoop update km",
    "pipx": f"pipx upgrade {PACKAGE}",
    "uv": f"uv tool upgrade {PACKAGE}",
    "python": f"python -m pip install --upgrade {PACKAGE}",
}

# A directory named km followed by one named like a version: lib/km/0.1.0/km,
# Cellar/km/0.1.0/libexec/km, scoop/apps/km/0.1.0/km.exe, Programs\km\0.1.0\km.exe.
_VERSIONED = re.compile(r"(?:^|/)km/v?\d+(?:\.\d+)+[^/]*/", re.IGNORECASE)
_INSTALLER = re.compile(r"^(?P<prefix>.*)/lib/km/(?P<version>[^/]+)/km$")
_HOMEBREW = re.compile(r"^(?P<prefix>.*)/Cellar/km/(?P<version>[^/]+)/")
_SCOOP = re.compile(r"^(?P<root>.*)/apps/km/(?P<version>[^/]+)/km\.exe$", re.IGNORECASE)
_WINDOWS_INSTALLER = re.compile(r"/km/(?P<version>v?\d+(?:\.\d+)+[^/]*)/km\.exe$", re.IGNORECASE)


def _slashed(path: str) -> str:
    return path.replace("\\", "/")


def is_versioned_km(path: str) -> bool:
    """Whether `path` runs a km from a versioned directory, which an upgrade removes."""
    return bool(_VERSIONED.search(_slashed(path)))


@dataclass(frozen=True, slots=True)
class Facts:
    """What `classify` looks at: the running km's real path, and the Python prefix."""

    executable: str  # the real path of the running km program (frozen) or its Python
    frozen: bool
    prefix: str  # sys.prefix
    windows: bool


@dataclass(frozen=True, slots=True)
class Installation:
    method: Method
    executable: str  # the running km (the versioned path for a frozen build)
    launcher: str  # what MCP clients should run: stable across upgrades
    prefix: str | None = None  # install.sh's PREFIX (lib/km and bin/km are under it)

    @property
    def upgrade_command(self) -> str:
        return UPGRADE_COMMANDS[self.method]


def classify(facts: Facts) -> tuple[Method, str | None]:
    """The install method, and install.sh's PREFIX when it was install.sh."""
    path = _slashed(facts.executable)
    if facts.frozen:
        if (found := _INSTALLER.match(path)) is not None:
            return "installer", found.group("prefix")
        if _HOMEBREW.match(path):
            return "homebrew", None
        if _SCOOP.match(path):
            return "scoop", None
        if facts.windows and _WINDOWS_INSTALLER.search(path):
            return "installer-windows", None
        return "installer", None  # an unpacked build somewhere: install.sh is its way up
    prefix = _slashed(facts.prefix).rstrip("/")
    if "/pipx/venvs/" in prefix + "/":
        return "pipx", None
    if "/uv/tools/" in prefix + "/":
        return "uv", None
    if "/Cellar/" in prefix:
        return "homebrew", None
    return "python", None


def launcher_candidates(method: Method, executable: str, prefix: str | None) -> list[str]:
    """Stable launchers to try for this method, best first (each used only when it resolves
    to the running km)."""
    path = _slashed(executable)
    join = ntpath.join if "\\" in executable else posixpath.join
    if method == "installer" and prefix is not None:
        return [join(prefix, "bin", "km")]
    if method == "homebrew" and (found := _HOMEBREW.match(path)) is not None:
        base = found.group("prefix")
        return [posixpath.join(base, "bin", "km"), posixpath.join(base, "opt", "km", "bin", "km")]
    if method == "scoop" and (found := _SCOOP.match(path)) is not None:
        root = executable[: found.end("root")]  # the original separators (same length)
        return [join(root, "apps", "km", "current", "km.exe")]
    return []


def choose_launcher(
    installation_method: Method,
    executable: str,
    prefix: str | None,
    on_path: str | None,
    resolves_to_us: Callable[[str], bool],
) -> str:
    """The first stable launcher that resolves to the running km: the method's own, then the
    `km` found on PATH (bare `km` for install.ps1, which maintains PATH), else `executable`."""
    for candidate in launcher_candidates(installation_method, executable, prefix):
        if resolves_to_us(candidate):
            return candidate
    if on_path is not None and resolves_to_us(on_path):
        if installation_method == "installer-windows":
            return "km"  # install.ps1 puts the new version's directory on PATH on upgrade
        if not is_versioned_km(on_path):
            return on_path
    return executable


def detect(environ: Mapping[str, str] | None = None) -> Installation:
    """How the running km was installed, and its stable launcher."""
    frozen = bool(getattr(sys, "frozen", False))
    running = _running_km(frozen)
    real = os.path.realpath(running)
    facts = Facts(real if frozen else running, frozen, sys.prefix, os.name == "nt")
    method, prefix = classify(facts)
    path = (environ if environ is not None else os.environ).get("PATH", "")
    found = shutil.which("km", path=path)

    def resolves_to_us(candidate: str) -> bool:
        try:
            return os.path.exists(candidate) and os.path.samefile(candidate, real)
        except OSError:
            return False

    on_path = os.path.abspath(found) if found else None
    launcher = choose_launcher(method, running, prefix, on_path, resolves_to_us)
    return Installation(method, running, launcher, prefix)


def _running_km(frozen: bool) -> str:
    """The absolute path of the km being run (a versioned path for a frozen build)."""
    from km.setup.wrap import is_km

    if frozen:  # a self-contained build: the executable is km itself
        return sys.executable
    if is_km(sys.argv[0]) and os.path.isfile(sys.argv[0]):
        return os.path.abspath(sys.argv[0])
    name = "km.exe" if os.name == "nt" else "km"
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside_python):
        return beside_python
    found = shutil.which("km")
    return os.path.abspath(found) if found else "km"
