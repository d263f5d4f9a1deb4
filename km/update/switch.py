"""Downloading, verifying and switching to a release, the way install.sh does it.

The archive is downloaded into a temporary directory and checked against SHA256SUMS; the
unpacked km must print the expected version; it is moved next to the installed versions
(`PREFIX/lib/km/.new-<pid>`), renamed to `PREFIX/lib/km/<version>`, and a fresh symlink is
renamed over `PREFIX/bin/km`. Only then are the other versions removed. Every step before the
final rename leaves the installed km as it was, so a failed or interrupted update (a tampered
archive, a server that goes away, Ctrl-C) leaves a working km.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass

from km.errors import KmError
from km.update.release import Candidate

HTTP_TIMEOUT_S = 30.0  # per connect and per read: a release server answers in well under this
VERSION_TIMEOUT_S = 60.0  # the new km's first start (`--version`) on a cold, busy disk
CHUNK = 1 << 16
MAX_SUMS_BYTES = 1 << 20  # SHA256SUMS lists a dozen archives; anything this big is not one


class UpdateError(KmError):
    """The update could not be made; the installed km is unchanged."""


@dataclass(frozen=True, slots=True)
class Layout:
    """install.sh's layout under PREFIX: versions in lib/km, the link bin/km."""

    prefix: str

    @property
    def libdir(self) -> str:
        return os.path.join(self.prefix, "lib", "km")

    @property
    def link(self) -> str:
        return os.path.join(self.prefix, "bin", "km")

    def is_ours(self) -> bool:
        """Whether bin/km is the installer's link (a symlink into lib/km)."""
        if not os.path.islink(self.link):
            return False
        target = os.readlink(self.link)
        return os.path.normpath(target).startswith(os.path.normpath(self.libdir) + os.sep)


def _open(url: str) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "km-update"})
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(
            request, timeout=HTTP_TIMEOUT_S
        )
    except urllib.error.HTTPError as exc:
        exc.close()
        raise UpdateError(f"cannot download {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UpdateError(f"cannot download {url}: {reason}") from None
    return response


def fetch_text(url: str) -> str:
    """A small text file (SHA256SUMS)."""
    with _open(url) as response:
        try:
            data: bytes = response.read(MAX_SUMS_BYTES + 1)
        except OSError as exc:
            raise UpdateError(f"cannot download {url}: {exc}") from None
    if len(data) > MAX_SUMS_BYTES:
        raise UpdateError(f"{url} is larger than any SHA256SUMS ({MAX_SUMS_BYTES} bytes)")
    return data.decode("utf-8", "replace")


def download(url: str, destination: str) -> str:
    """Save `url` to `destination`; return its SHA-256 (hex). A short or broken transfer is an
    UpdateError (urllib does not notice a body shorter than its Content-Length by itself)."""
    digest = hashlib.sha256()
    received = 0
    with _open(url) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        try:
            with open(destination, "wb") as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
        except OSError as exc:  # connection reset, timeout, disk full
            raise UpdateError(f"download of {url} failed after {received} bytes: {exc}") from None
    if expected is not None and received != expected:
        raise UpdateError(f"download of {url} was cut off after {received} of {expected} bytes")
    return digest.hexdigest()


def unpack(archive: str, into: str) -> None:
    try:
        if archive.endswith(".zip"):
            _unzip(archive, into)
        else:
            with tarfile.open(archive, "r:gz") as t:
                t.extractall(into, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise UpdateError(f"cannot unpack {os.path.basename(archive)}: {exc}") from None


def _unzip(archive: str, into: str) -> None:
    """Like extractall (names are made safe the same way), keeping the Unix modes a zip made
    on Unix records (a zip made on Windows records none; Windows has no mode to keep)."""
    with zipfile.ZipFile(archive) as z:
        for member in z.infolist():
            path = z.extract(member, into)
            mode = (member.external_attr >> 16) & 0o777
            if mode and os.name != "nt" and not member.is_dir():
                os.chmod(path, mode)


def check_runs(km: str, version: str) -> None:
    """The unpacked km must start here and say it is `version`."""
    if not os.access(km, os.X_OK):
        top, name = os.path.split(km)
        raise UpdateError(f"the archive does not hold {os.path.basename(top)}/{name}")
    try:
        said = subprocess.run(
            [km, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"the downloaded km does not run on this machine: {exc}") from None
    if said.stdout.strip() != f"km {version}":
        shown = said.stdout.strip() or f"exit status {said.returncode}"
        raise UpdateError(f"the downloaded km says {shown!r}, expected 'km {version}'")


def fetch_verified(base: str, candidate: Candidate, work: str, program: str) -> str:
    """Download `candidate` into `work`, check it against SHA256SUMS, unpack it and run its
    `program --version`; return the unpacked top directory. Touches nothing outside `work`."""
    archive = os.path.join(work, candidate.archive)
    got = download(f"{base}/{candidate.archive}", archive)
    if got != candidate.sha256:
        raise UpdateError(
            f"checksum mismatch for {candidate.archive} (got {got}, SHA256SUMS says "
            f"{candidate.sha256}): refusing to install it"
        )
    unpacked = os.path.join(work, "x")
    unpack(archive, unpacked)
    top = os.path.join(unpacked, candidate.top)
    check_runs(os.path.join(top, program), candidate.version)
    return top


def install(base: str, candidate: Candidate, layout: Layout) -> str:
    """Download, verify and switch `layout` to `candidate`; return the new version's km."""
    if not layout.is_ours():
        raise UpdateError(
            f"{layout.link} is not install.sh's link into {layout.libdir}: re-run install.sh"
        )
    work = tempfile.mkdtemp(prefix="km-update-")
    stage = ""
    try:
        top = fetch_verified(base, candidate, work, "km")
        stage = os.path.join(layout.libdir, f".new-{os.getpid()}")
        try:
            shutil.move(top, stage)
        except OSError as exc:
            raise UpdateError(f"cannot write to {layout.libdir}: {exc.strerror or exc}") from None
        target = _place(stage, os.path.join(layout.libdir, candidate.version))
        stage = ""
        _relink(layout, os.path.join(target, "km"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if stage:
            shutil.rmtree(stage, ignore_errors=True)
    return os.path.join(layout.libdir, candidate.version, "km")


def _place(stage: str, target: str) -> str:
    """Rename `stage` to `target`, putting a same-named existing version back on failure."""
    old = ""
    if os.path.exists(target):
        old = f"{stage}.old"
        os.rename(target, old)
    try:
        os.rename(stage, target)
    except OSError as exc:
        if old:
            os.rename(old, target)
        raise UpdateError(f"cannot move the new km into {target}: {exc.strerror or exc}") from None
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _relink(layout: Layout, km: str) -> None:
    fresh = os.path.join(os.path.dirname(layout.link), f".km-new-{os.getpid()}")
    try:
        os.symlink(km, fresh)
        os.replace(fresh, layout.link)
    except OSError as exc:
        try:
            os.unlink(fresh)
        except OSError:
            pass
        raise UpdateError(f"cannot link {layout.link} to {km}: {exc.strerror or exc}") from None


def remove_others(layout: Layout, keep: str) -> None:
    """Remove every version but `keep` (as install.sh does after switching). Called last: the
    running km's own files may be among them."""
    for name in os.listdir(layout.libdir):
        if name != keep and not name.startswith("."):
            shutil.rmtree(os.path.join(layout.libdir, name), ignore_errors=True)
