"""The side journal: a session's events kept beside the spool when the spool cannot take them.

Another process may hold the spool's write lock for longer than a km session lasts (a `sqlite3`
shell left in `BEGIN EXCLUSIVE`, a backup tool). Rather than lose what the session captured, the
spool writer writes what it still holds, with the session and its end, to a private file beside
the spool (`<spool>.journal-<session id>`, mode 0600, written whole and renamed into place), and
says so on stderr. The next km process that opens the spool, and `km status`, fold every journal
in (`fold_journals`): the session row, its events (an event id already stored is skipped), its
end and last error; then the file is removed.

A journal is claimed before it is folded (renamed to `...folding-<pid>`), so two processes never
fold the same one; a claim whose process died is taken over. The format is JSON lines: a header
(`session`, `ended_ns`, `exit_code`, `last_error`), then one event per line with its payload in
base64. Every plain field an `Event` has is kept (str, int, float, bool, None: the insight
fields `tool`, `status`, `tokens`, `risk` among them), whichever fields it grows; its analysis
notes (km.capture.notes rows: findings, listings, server identity, problem counts, already
redacted) are kept as `notes`, each tagged with its row type, so the folded session has its
findings and inventory too. A note that cannot be read back is dropped (derived data), never
its event.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Sequence

import orjson

from km.events import Event, SessionInfo
from km.files import replace_atomically
from km.private import PrivateFileError, open_private

SUFFIX = ".journal-"
CLAIMED = ".folding-"
STALE_CLAIM_S = 120.0  # a claim older than this whose process is gone is taken over
MAX_JOURNAL_BYTES = 256 * 1024 * 1024  # a larger file is not a km journal: left alone


_PLAIN = (str, int, float, bool)


def _note_json(note: object) -> dict[str, object] | None:
    """A notes row as JSON-ready data tagged with its type; None for anything else."""
    from km.capture.notes import FindingRow, ListingRow, ProblemsRow, ServerRow

    if not isinstance(note, FindingRow | ListingRow | ProblemsRow | ServerRow):
        return None
    return {"type": type(note).__name__, **dataclasses.asdict(note)}


def _note_from_json(data: object) -> object | None:
    """The notes row `_note_json` wrote; None when `data` is not one."""
    from km.capture.notes import (
        ChangeRow,
        DefinitionRow,
        FindingRow,
        ListingRow,
        ProblemsRow,
        ServerRow,
    )

    if not isinstance(data, dict):
        return None
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        kind = data.get("type")
        if kind == "FindingRow":
            return FindingRow(**fields)
        if kind == "ServerRow":
            return ServerRow(**fields)
        if kind == "ProblemsRow":
            return ProblemsRow(**fields)
        if kind == "ListingRow":
            fields["definitions"] = tuple(DefinitionRow(**d) for d in fields["definitions"])
            fields["changes"] = tuple(ChangeRow(**c) for c in fields["changes"])
            fields["problems"] = tuple(fields["problems"])
            return ListingRow(**fields)
    except (TypeError, KeyError):
        return None
    return None


class JournalError(Exception):
    """A journal file that cannot be read as one (left in place, named in the message)."""


def journal_path(spool_path: str, session_id: str) -> str:
    return f"{spool_path}{SUFFIX}{session_id}"


def write_journal(
    spool_path: str,
    session: SessionInfo,
    events: Sequence[Event],
    *,
    ended_ns: int | None,
    exit_code: int | None,
    last_error: str | None,
) -> str:
    """Write the session's unsaved events and end beside the spool; the journal's path.
    Raises OSError."""
    header = {
        "session": dataclasses.asdict(session),
        "ended_ns": ended_ns,
        "exit_code": exit_code,
        "last_error": last_error,
    }
    lines = [orjson.dumps(header)]
    for event in events:
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        # plain values, and the analysis notes as tagged rows
        fields = {k: v for k, v in fields.items() if v is None or isinstance(v, _PLAIN)}
        fields["payload"] = base64.b64encode(event.payload).decode()
        notes = [n for n in map(_note_json, event.notes or ()) if n is not None]
        if notes:
            fields["notes"] = notes
        lines.append(orjson.dumps(fields))
    path = journal_path(spool_path, session.session_id)
    replace_atomically(path, b"\n".join(lines) + b"\n", 0o600)
    return path


def keep_in_journal(
    spool_path: str,
    session: SessionInfo,
    events: Sequence[Event],
    ended_ns: int | None,
    exit_code: int | None,
    last_error: str | None,
) -> tuple[bool, str]:
    """`write_journal`, and the one line for stderr either way: (kept, message)."""
    try:
        path = write_journal(
            spool_path,
            session,
            events,
            ended_ns=ended_ns,
            exit_code=exit_code,
            last_error=last_error,
        )
    except (OSError, TypeError, ValueError) as exc:
        return False, (
            f"spool {spool_path} stayed locked by another process and the side journal could "
            f"not be written ({exc}): {len(events)} events of this session are lost"
        )
    return True, (
        f"spool {spool_path} is locked by another process; {len(events)} events of this "
        f"session kept in {path} (stored by the next km or `km status`)"
    )


def pending_journals(spool_path: str) -> list[str]:
    """Journals beside the spool waiting to be folded in (claims of dead processes included)."""
    directory = os.path.dirname(os.path.abspath(spool_path))
    prefix = os.path.basename(spool_path) + SUFFIX
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        if not name.startswith(prefix) or name.startswith("."):
            continue
        path = os.path.join(directory, name)
        if CLAIMED in name and not _stale_claim(path, name):
            continue
        found.append(path)
    return found


def _stale_claim(path: str, name: str) -> bool:
    pid_text = name.rpartition(CLAIMED)[2]
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (ValueError, OSError):
        pass
    try:
        return time.time() - os.lstat(path).st_mtime > STALE_CLAIM_S
    except OSError:
        return False


def claim(path: str) -> str | None:
    """Rename a journal to this process's claim; None when another process took it first."""
    base = path.partition(CLAIMED)[0]
    claimed = f"{base}{CLAIMED}{os.getpid()}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    return claimed


def read_journal(path: str) -> tuple[SessionInfo, list[Event], dict[str, object]]:
    """(session, events, header) of a journal. Raises `JournalError`, `PrivateFileError`."""
    fd, _ = open_private(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_JOURNAL_BYTES:
            raise JournalError(f"{path}: {size} bytes, too large for a km journal")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    try:
        first, *rest = data.splitlines()
        header = orjson.loads(first)
        session = SessionInfo(
            **{**header["session"], "command": tuple(header["session"]["command"])}
        )
        events = []
        for line in rest:
            if not line:
                continue
            row = orjson.loads(line)
            row["payload"] = base64.b64decode(row["payload"])
            notes = [n for n in map(_note_from_json, row.pop("notes", None) or ()) if n is not None]
            events.append(Event(**row, notes=notes or None))
    except (ValueError, TypeError, KeyError) as exc:
        raise JournalError(f"{path}: not a km journal ({exc})") from None
    return session, events, header


def fold_journals(store: object, spool_path: str) -> tuple[int, int]:
    """Store every pending journal into the open `store` (a `SpoolStore`), then remove it.
    Returns (journals folded, events in them). Spool errors propagate: the journal that was
    being folded goes back to waiting. A journal that cannot be read is left where it is."""
    from km.spool.store import SpoolStore

    assert isinstance(store, SpoolStore)
    folded = events_total = 0
    for path in pending_journals(spool_path):
        claimed = claim(path)
        if claimed is None:
            continue
        try:
            session, events, header = read_journal(claimed)
        except (JournalError, PrivateFileError, OSError):
            _unclaim(claimed, path)
            continue
        try:
            store.begin_session(session)
            for start in range(0, len(events), 2000):
                store.append(events[start : start + 2000])
            ended_ns = header.get("ended_ns")
            if isinstance(ended_ns, int):
                exit_code = header.get("exit_code")
                store.end_session(
                    session.session_id, ended_ns, exit_code if isinstance(exit_code, int) else None
                )
            last_error = header.get("last_error")
            if isinstance(last_error, str):
                store.record_error(session.session_id, last_error)
        except BaseException:
            _unclaim(claimed, path)
            raise
        os.unlink(claimed)
        folded += 1
        events_total += len(events)
    return folded, events_total


def _unclaim(claimed: str, original: str) -> None:
    try:
        os.rename(claimed, original.partition(CLAIMED)[0])
    except OSError:
        pass


def fold_pending(spool_path: str, max_bytes: int, busy_timeout_s: float) -> str | None:
    """For km's own commands (`km status`, `km sync`): open the spool and fold the journals
    waiting beside it in. None when done (or there were none), else one line saying why they
    must wait longer (the spool is still locked, ...)."""
    from km.errors import SpoolError
    from km.spool.store import SpoolStore

    waiting = pending_journals(spool_path)
    if not waiting:
        return None
    try:
        store = SpoolStore.open(spool_path, max_bytes, busy_timeout_s=busy_timeout_s)
        try:
            fold_journals(store, spool_path)
        finally:
            store.close()
    except SpoolError as exc:
        return f"{len(waiting)} sessions wait in side journals beside the spool ({exc})"
    return None
