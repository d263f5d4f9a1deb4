"""Files that must stay the user's own: the spool (captured traffic) and the config file (the
API key).

A path is opened without following a symbolic link (`O_NOFOLLOW`): a link planted where km
keeps its files is refused, never written through. A file must belong to the user; one that
group or others can read or write is made private (0600), and the caller is told so (one line,
for stderr). A directory holding such a file must belong to the user (or root) and must not be
writable by others (else a file in it could be swapped for a link between km's check and its
use); one of the user's own that others can write loses that write permission. `/tmp` and its
like (sticky, world-writable) are refused.

Cheap to import (os and stat only): `km.settings` uses it on the way to the config file.
"""

from __future__ import annotations

import errno
import os
import stat

from km.errors import KmError

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where links need privileges
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_CHECK_OWNER = hasattr(os, "geteuid")  # POSIX: files have owners km can compare


class PrivateFileError(KmError):
    """A file or directory km keeps private is a link, someone else's, or open to others."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _mine(uid: int) -> bool:
    return not _CHECK_OWNER or uid == os.geteuid()


def _mode(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def open_private(path: str, flags: int, *, create: bool = False) -> tuple[int, list[str]]:
    """Open `path` (never through a symbolic link), check it is a regular file of the user's,
    make it 0600 if others had access; (fd, notes about what was tightened). A file created
    here is 0600 whatever the umask. Raises `PrivateFileError`, or OSError (FileNotFoundError
    when it does not exist and not `create`)."""
    flags |= O_NOFOLLOW | O_CLOEXEC
    created = False
    if create:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = _open_existing(path, flags)
    else:
        fd = _open_existing(path, flags)
    notes: list[str] = []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(path, "not a regular file: refused")
        if not _mine(st.st_uid):
            raise PrivateFileError(
                path,
                f"belongs to user id {st.st_uid}, not to you: refused (remove it, or "
                "point km at a file of your own)",
            )
        if created or st.st_mode & 0o077:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            if not created:
                notes.append(
                    f"{path} was open to other users (mode {_mode(st.st_mode)}); "
                    "made it private (0600)"
                )
    except BaseException:
        os.close(fd)
        raise
    return fd, notes


def _open_existing(path: str, flags: int) -> int:
    try:
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (O_NOFOLLOW and os.path.islink(path)):
            raise PrivateFileError(path, "is a symbolic link: refused (remove it)") from None
        raise


def read_private(path: str) -> tuple[bytes, str | None]:
    """The bytes of a private file (see `open_private`), and a note when it had to be made
    private. Raises FileNotFoundError, other OSErrors and `PrivateFileError`."""
    fd, notes = open_private(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks), (notes[0] if notes else None)


def check_directory(path: str) -> list[str]:
    """Check the directory km keeps a private file in: the user's (or root's), not writable
    by others. One of the user's own that others can write loses that permission (the note
    says so). Raises `PrivateFileError`, or OSError when it cannot be examined."""
    st = os.stat(path)
    if not _CHECK_OWNER:
        return []
    if st.st_uid not in (os.geteuid(), 0):
        raise PrivateFileError(
            path,
            f"the directory belongs to user id {st.st_uid}, not to you: refused "
            "(use a directory of your own)",
        )
    if not st.st_mode & 0o022:
        return []
    if st.st_mode & stat.S_ISVTX or st.st_uid != os.geteuid():
        raise PrivateFileError(
            path,
            f"the directory is writable by other users (mode {_mode(st.st_mode)}): "
            "refused (use a directory of your own)",
        )
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o022)
    return [
        f"directory {path} was writable by other users (mode {_mode(st.st_mode)}); "
        "removed their write permission"
    ]


def check_companion(path: str) -> list[str]:
    """A file SQLite opens by name beside the spool (`-wal`, `-shm`): if present, it must be
    a regular file of the user's; made 0600 if others had access."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        raise PrivateFileError(path, "is a symbolic link: refused (remove it)")
    if not stat.S_ISREG(st.st_mode):
        raise PrivateFileError(path, "not a regular file: refused")
    if not _mine(st.st_uid):
        raise PrivateFileError(path, f"belongs to user id {st.st_uid}, not to you: refused")
    if st.st_mode & 0o077:
        os.chmod(path, 0o600)
        return [f"{path} was open to other users (mode {_mode(st.st_mode)}); made it private"]
    return []


def describe_access(path: str) -> str | None:
    """For `km doctor`: what is wrong with a private file's ownership or mode, or with its
    directory's, or None. Changes nothing."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(directory)
    except OSError:
        return None
    if _CHECK_OWNER and st.st_uid not in (os.geteuid(), 0):
        return f"directory {directory} belongs to user id {st.st_uid}, not to you"
    if _CHECK_OWNER and st.st_mode & 0o022:
        return f"directory {directory} is writable by other users (mode {_mode(st.st_mode)})"
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link (km refuses to follow it)"
    if not _mine(st.st_uid):
        return f"{path} belongs to user id {st.st_uid}, not to you"
    if st.st_mode & 0o077:
        return f"{path} is open to other users (mode {_mode(st.st_mode)})"
    return None
