"""Wrapping or unwrapping one config file on disk: the I/O around `jsonc_edit`'s plans."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass

from km.setup import files
from km.setup.files import BackupStore, SetupError
from km.setup.jsonc import JsoncError
from km.setup.jsonc_edit import Outcome, Plan, apply_edits, plan_unwrap, plan_wrap


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    outcomes: tuple[Outcome, ...]
    changed: bool  # the file was (or, in a dry run, would be) rewritten
    diff: str  # unified diff of the change; empty when nothing changes
    note: str = ""  # how it was done: backup location, restored from backup, ...


def km_executable() -> str:
    """The path clients should run km by: the install method's stable launcher (e.g. the
    `~/.local/bin/km` link) when it resolves to this km, never a versioned directory that
    the next upgrade removes; otherwise this km's absolute path."""
    from km.installation import detect

    return detect().launcher


def stale_km(command: str) -> bool:
    """Whether a wrapped server's km path must be replaced: versioned (the next upgrade removes
    it) or an absolute path that no longer exists."""
    from km.installation import is_versioned_km

    return is_versioned_km(command) or (os.path.isabs(command) and not os.path.exists(command))


def wrap_file(path: str, km_command: str, store: BackupStore, dry_run: bool) -> FileResult:
    data = files.read_config(path)
    text = files.decode(path, data)
    plan = _plan(path, lambda: plan_wrap(text, km_command, stale_km))
    new = apply_edits(text, plan.edits).encode("utf-8")
    diff = unified_diff(path, text, new.decode("utf-8"))
    if dry_run or not plan.changes:
        return FileResult(path, plan.outcomes, plan.changes, diff)
    previous = store.load(path)
    if previous and previous.written_sha256 == files.sha256(data) and previous.original():
        backup = previous.original_path  # the file is as km left it: keep the older original
    else:
        backup = store.save_original(path, data)
    files.replace_file(path, data, new)
    store.record_written(path, new)
    return FileResult(path, plan.outcomes, True, diff, f"backup: {backup}")


def unwrap_file(path: str, store: BackupStore, dry_run: bool) -> FileResult:
    data = files.read_config(path)
    text = files.decode(path, data)
    plan = _plan(path, lambda: plan_unwrap(text))
    new = apply_edits(text, plan.edits).encode("utf-8")
    note = ""
    backup = store.load(path)
    original = backup.original() if backup else None
    if backup and original is not None and backup.written_sha256 == files.sha256(data):
        restored = files.decode(backup.original_path, original)
        leftover = _plan(backup.original_path, lambda: plan_unwrap(restored))
        new = apply_edits(restored, leftover.edits).encode("utf-8")  # from an earlier setup
        note = "restored the original bytes from the backup"
    elif backup:
        note = "changed since km setup: unwrapped server by server"
    changed = new != data
    diff = unified_diff(path, text, new.decode("utf-8"))
    if changed and not dry_run:
        files.replace_file(path, data, new)
    if not dry_run:
        store.remove(path)
    return FileResult(path, plan.outcomes, changed, diff, note if changed else "")


def unified_diff(path: str, before: str, after: str) -> str:
    """The change as a unified diff to print, secret values masked."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{path} (before)",
        tofile=f"{path} (after)",
    )
    return "".join(_masked(line if line.endswith("\n") else line + "\n") for line in lines)


def _masked(line: str) -> str:
    """A diff line with secret values masked by km's redactor (tokens and passwords in `env`
    blocks, credentials in URLs), context lines included: the diff is printed."""
    from km.redact import redact_text

    if line.startswith(("---", "+++", "@@")):
        return line
    return line[:1] + redact_text(line[1:])


def _plan(path: str, make: Callable[[], Plan]) -> Plan:
    try:
        return make()
    except JsoncError as exc:
        raise SetupError(path, f"not valid JSON: {exc}") from None
