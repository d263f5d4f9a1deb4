"""Atomic replacement and backups of config files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from km.setup.files import BackupStore, SetupError, replace_file, sha256, write_atomically


def test_replace_keeps_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_bytes(b"old")
    config.chmod(0o604)
    replace_file(str(config), b"old", b"new")
    assert config.read_bytes() == b"new"
    assert stat.S_IMODE(config.stat().st_mode) == 0o604
    assert [p.name for p in tmp_path.iterdir()] == ["mcp.json"]


def test_replace_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_bytes(b"changed by the client")
    with pytest.raises(SetupError, match="changed while km was editing it"):
        replace_file(str(config), b"what km read", b"new")
    assert config.read_bytes() == b"changed by the client"


def test_a_write_that_cannot_happen_is_a_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "mcp.json"
    with pytest.raises(SetupError, match=r"cannot write: No such file or directory"):
        write_atomically(str(missing), b"x", 0o600)


def test_backup_store_round_trip(tmp_path: Path) -> None:
    store = BackupStore(str(tmp_path / "backups"))
    config = str(tmp_path / "mcp.json")
    assert store.load(config) is None
    saved = store.save_original(config, b"original")
    store.record_written(config, b"written")
    backup = store.load(config)
    assert backup is not None and backup.original_path == saved
    assert backup.original() == b"original" and backup.written_sha256 == sha256(b"written")
    assert stat.S_IMODE(Path(saved).stat().st_mode) == 0o600
    store.remove(config)
    assert store.load(config) is None and not Path(saved).exists()
