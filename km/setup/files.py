"""Reading, backing up and atomically rewriting client config files.

`replace_file` writes a temporary file next to the target, fsyncs it, gives it the target's
mode and renames it over the target (symlinks are followed, so a dotfile link stays a link),
after checking that nobody changed the file since km read it. `BackupStore` keeps, per config
file, the bytes it had before `km setup` changed it and the hash of what km wrote, so that
`km setup --undo` can put the original bytes back when nothing else touched the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

from km.errors import KmError
from km.files import replace_atomically

PRIVATE_FILE_MODE = 0o600  # backups may hold tokens from the servers' `env`
PRIVATE_DIR_MODE = 0o700


class SetupError(KmError):
    """A config file cannot be read, parsed or written; the message names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_config(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SetupError(path, "no such file") from None
    except IsADirectoryError:
        raise SetupError(path, "is a directory, not a config file") from None
    except OSError as exc:
        raise SetupError(path, f"cannot read: {exc.strerror or exc}") from None


def decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SetupError(path, f"not UTF-8 text (byte {exc.start})") from None


def replace_file(path: str, expected: bytes, new: bytes) -> None:
    """Atomically replace the file at `path`, which must still hold `expected`, with `new`."""
    target = os.path.realpath(path)
    try:
        with open(target, "rb") as f:
            if f.read() != expected:
                raise SetupError(path, "changed while km was editing it; run the command again")
        mode = os.stat(target).st_mode & 0o7777
    except OSError as exc:
        raise SetupError(path, f"cannot read: {exc.strerror or exc}") from None
    write_atomically(target, new, mode, shown_path=path)


def write_atomically(path: str, data: bytes, mode: int, shown_path: str | None = None) -> None:
    try:
        replace_atomically(path, data, mode)
    except OSError as exc:
        raise SetupError(shown_path or path, f"cannot write: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class Backup:
    config_path: str
    original_path: str  # the saved bytes of the config before km setup changed it
    written_sha256: str  # what km setup wrote; undo restores the original only if unchanged

    def original(self) -> bytes | None:
        try:
            with open(self.original_path, "rb") as f:
                return f.read()
        except OSError:
            return None


class BackupStore:
    """One record (`<name>.json`) and one copy of the original bytes (`<name>.orig`) per
    config file, in km's data directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _base(self, config_path: str) -> str:
        real = os.path.realpath(config_path)
        digest = hashlib.sha256(real.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return os.path.join(self.directory, f"{os.path.basename(real)}-{digest}")

    def load(self, config_path: str) -> Backup | None:
        base = self._base(config_path)
        try:
            with open(base + ".json", "rb") as f:
                record = json.loads(f.read())
            return Backup(config_path, base + ".orig", str(record["written_sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save_original(self, config_path: str, original: bytes) -> str:
        """Keep `original` as the bytes to restore; returns where they are."""
        base = self._base(config_path)
        self._make_directory()
        write_atomically(base + ".orig", original, PRIVATE_FILE_MODE)
        return base + ".orig"

    def record_written(self, config_path: str, written: bytes) -> None:
        base = self._base(config_path)
        record = {
            "path": os.path.realpath(config_path),
            "written_sha256": sha256(written),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        data = json.dumps(record, indent=2).encode() + b"\n"
        write_atomically(base + ".json", data, PRIVATE_FILE_MODE)

    def remove(self, config_path: str) -> None:
        base = self._base(config_path)
        for suffix in (".json", ".orig"):
            try:
                os.unlink(base + suffix)
            except OSError:
                pass

    def _make_directory(self) -> None:
        try:
            os.makedirs(self.directory, mode=PRIVATE_DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise SetupError(self.directory, f"cannot create: {exc.strerror or exc}") from None
