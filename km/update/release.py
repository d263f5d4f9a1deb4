"""What a release offers, without I/O: its base URL, archive names, SHA256SUMS, versions.

The same rules as install.sh and install.ps1: archives are `km-<version>-<os>-<arch>.tar.gz`
(`.zip` on Windows) listed in `SHA256SUMS` in `sha256sum` format (`<hex>  <name>`, or
`<hex> *<name>`); the default base URL is the GitHub release's `latest/download`, and
`KM_INSTALL_BASE_URL` points at a mirror (or a local directory served over HTTP).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

REPO_URL = "https://github.com/kilometers-ai/km"
BASE_URL_ENV = "KM_INSTALL_BASE_URL"
OS_NAMES = {"linux": "linux", "darwin": "darwin", "win32": "windows", "windows": "windows"}
ARCH_NAMES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SUM_LINE = re.compile(r"^(?P<hash>[0-9a-fA-F]{64}) [ *](?P<name>\S.*)$")


class ReleaseError(ValueError):
    """The release's metadata does not say what km needs (no build, bad SHA256SUMS)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One archive of a release: its version, file name and expected SHA-256 (hex)."""

    version: str
    archive: str
    sha256: str

    @property
    def top(self) -> str:
        """The one directory inside the archive."""
        return self.archive.removesuffix(".tar.gz").removesuffix(".zip")


def base_url(environ: Mapping[str, str]) -> str:
    """Where SHA256SUMS and the archives are: a mirror, else the latest GitHub release."""
    mirror = environ.get(BASE_URL_ENV, "").strip()
    if mirror:
        return mirror.rstrip("/")
    return f"{REPO_URL}/releases/latest/download"


def platform_name(system: str, machine: str) -> str | None:
    """`linux-amd64` and the like (sys.platform and platform.machine() in), or None."""
    os_name = OS_NAMES.get(system.lower())
    arch = ARCH_NAMES.get(machine.lower())
    return f"{os_name}-{arch}" if os_name and arch else None


def archive_suffix(platform: str) -> str:
    return ".zip" if platform.startswith("windows-") else ".tar.gz"


def archive_name(version: str, platform: str) -> str:
    return f"km-{version}-{platform}{archive_suffix(platform)}"


def parse_sums(text: str) -> dict[str, str]:
    """`SHA256SUMS` as {file name: lowercase hex digest}; ReleaseError on a malformed line."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        found = _SUM_LINE.match(line.rstrip("\r"))
        if found is None:
            raise ReleaseError(f"SHA256SUMS line {number} is not `<sha256>  <file>`")
        sums[found.group("name")] = found.group("hash").lower()
    return sums


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def is_newer(candidate: str, current: str) -> bool:
    """Whether `candidate` is a later version than `current` (PEP 440 order)."""
    new, old = parse_version(candidate), parse_version(current)
    if new is None:
        return False
    return old is None or new > old


def newest(sums: Mapping[str, str], platform: str) -> Candidate | None:
    """The newest km archive for `platform` in a release's SHA256SUMS (pre-releases only when
    there is nothing else)."""
    prefix, suffix = "km-", f"-{platform}{archive_suffix(platform)}"
    found: list[tuple[Version, Candidate]] = []
    for name, digest in sums.items():
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        text = name[len(prefix) : -len(suffix)]
        version = parse_version(text)
        if version is not None:
            found.append((version, Candidate(text, name, digest)))
    if not found:
        return None
    final = [item for item in found if not item[0].is_prerelease] or found
    return max(final, key=lambda item: item[0])[1]
