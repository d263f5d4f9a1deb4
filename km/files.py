"""Replacing a file atomically: readers see the old bytes or the new ones, never a mix, and a
crash leaves one of the two. Shared by `km login`/`km config` and `km setup`."""

from __future__ import annotations

import os
import tempfile


def replace_atomically(path: str, data: bytes, mode: int) -> None:
    """Write `data` to a temporary file beside `path` (created private), flush it to disk, give
    it `mode`, rename it over `path`, then flush the directory so the rename survives a crash.
    Raises OSError; the temporary file is removed on failure."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".km-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory; its rename is durable as it is
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
