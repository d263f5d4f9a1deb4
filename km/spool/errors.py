"""Typed spool errors, and the mapping from SQLite result codes and OS errors onto them.

The writer thread decides what to do from the type alone: retry (`SpoolBusy`), keep events in
memory and back off (`SpoolFull`, `SpoolUnwritable`), or move the file aside (`SpoolCorrupt`).
Classification uses SQLite's primary result code (`sqlite_errorcode & 0xFF`), never message text.
This module imports neither sqlite3 nor anything else costly, so it is safe anywhere.
"""

from __future__ import annotations

import errno

from km.errors import SpoolError

# SQLite primary result codes (https://sqlite.org/rescode.html).
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_AUTH = 23
SQLITE_NOTADB = 26

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class SpoolMissing(SpoolError):
    """There is no spool file yet: nothing was ever captured here."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "no spool here yet: nothing has been captured")


class SpoolBusy(SpoolError):
    """Other km processes held the spool's write lock for the whole busy timeout."""


class SpoolFull(SpoolError):
    """The disk (or quota) holding the spool is full."""


class SpoolCorrupt(SpoolError):
    """The spool file is damaged or is not an SQLite database."""

    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the damaged file, when known


class SpoolUnwritable(SpoolError):
    """The spool cannot be created or written: permissions, a read-only or failing filesystem."""


class SpoolRefused(SpoolError):
    """The spool (or its directory) is a symbolic link, another user's, or open to others in a
    way km will not fix: km neither writes nor reads it."""


class SpoolTooNew(SpoolError):
    """The spool was created by a newer km whose schema this km does not know."""

    def __init__(self, path: str, version: int, known: int) -> None:
        super().__init__(
            path,
            f"schema version {version} is newer than this km understands ({known}); "
            "upgrade km or point KM_SPOOL at another file",
        )
        self.version = version
        self.known = known


def classify_sqlite(path: str, exc: BaseException) -> SpoolError:
    """The typed error for an `sqlite3.Error`, chosen by its SQLite result code."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or "unknown SQLite error"
    detail = f"{exc} ({name})"
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return SpoolBusy(path, f"locked by other km processes for too long: {detail}")
    if primary == SQLITE_FULL:
        return SpoolFull(path, f"disk full: {detail}")
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return SpoolCorrupt(path, f"damaged or not a km spool: {detail}")
    if primary in (SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_AUTH):
        return SpoolUnwritable(path, f"cannot write: {detail}")
    return SpoolError(path, detail)


def classify_os(path: str, exc: OSError) -> SpoolError:
    """The typed error for an `OSError` met while creating the spool's directory or file."""
    reason = exc.strerror or str(exc)
    if exc.filename and exc.filename != path:
        reason = f"{exc.filename}: {reason}"
    if exc.errno in _FULL_ERRNOS:
        return SpoolFull(path, f"disk full: {reason}")
    return SpoolUnwritable(path, f"cannot create or move: {reason}")
