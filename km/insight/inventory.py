"""A server's inventory of definitions and how it drifts. Sans-IO.

Server identity: the name km gives the server (`--name`, or derived from its command) plus the
`serverInfo.name` its `initialize` result reports. The `serverInfo.version` is kept with every
snapshot but is not part of the identity: an upgrade is then a change of the same server (whose
drift is ranked knowing the version moved), not a new server whose history starts over.

`compare(old, new)` lists what changed between two snapshots of one server and one list kind:
added, removed, changed (which fields, and a unified text diff of them). `drift_findings` ranks
the changes: a definition that changed while the server's version stayed the same is the rug-pull
signal (high); the same change with a new version is an update (medium); a new tool is noted
(medium with the same version, low with a new one) and a removed one too (low). Pins (approved
hashes per tool) give `pin_findings`: a finding for each tool whose current hash is not the
approved one, for as long as that holds.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import orjson

from km.insight.definitions import Definition, canonical_text
from km.insight.findings import DRIFT, HIGH, LOW, MEDIUM, Finding

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"

DIFF_INPUT_CHARS = 64 * 1024  # each side of a field is cut to this before diffing
DIFF_OUTPUT_CHARS = 16 * 1024  # a change's diff text is cut to this
EXCERPT_CHARS = 120

# Drift rules: id -> (severity, what it means). Listed in docs/insight.md.
RUG_PULL = "D101"
UPDATED = "D102"
ADDED_SAME_VERSION = "D103"
ADDED_NEW_VERSION = "D104"
REMOVED_TOOL = "D105"
UNAPPROVED = "D106"
DRIFT_RULES: dict[str, tuple[str, str]] = {
    RUG_PULL: (HIGH, "definition changed while the server's version stayed the same"),
    UPDATED: (MEDIUM, "definition changed together with the server's version"),
    ADDED_SAME_VERSION: (MEDIUM, "new definition while the server's version stayed the same"),
    ADDED_NEW_VERSION: (LOW, "new definition with a new server version"),
    REMOVED_TOOL: (LOW, "definition no longer listed"),
    UNAPPROVED: (HIGH, "current definition differs from the approved (pinned) one"),
}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One complete listing of one server: `kind` is the list method (`tools/list`, ...)."""

    server: str
    info_name: str | None
    info_version: str | None
    kind: str
    definitions: Mapping[str, Definition]

    @property
    def hashes(self) -> dict[str, str]:
        return {name: d.hash for name, d in self.definitions.items()}


@dataclass(frozen=True, slots=True)
class Change:
    """One definition that was added, removed or changed between two snapshots."""

    name: str
    change: str  # ADDED, REMOVED, CHANGED
    old_hash: str | None
    new_hash: str | None
    fields: tuple[str, ...] = ()  # the fields that differ (CHANGED only)
    diff: str = ""  # unified diff of those fields (CHANGED only)


@dataclass(frozen=True, slots=True)
class InventoryDiff:
    """What changed from `old_version` to `new_version` of one server's listing."""

    server: str
    info_name: str | None
    kind: str
    old_version: str | None
    new_version: str | None
    changes: tuple[Change, ...]

    @property
    def version_changed(self) -> bool:
        return self.old_version != self.new_version


def compare(old: Snapshot, new: Snapshot) -> InventoryDiff:
    """The changes from `old` to `new` (same server and kind), in name order."""
    changes: list[Change] = []
    before, after = old.definitions, new.definitions
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None and b is not None:
            changes.append(Change(name, ADDED, None, b.hash))
        elif b is None and a is not None:
            changes.append(Change(name, REMOVED, a.hash, None))
        elif a is not None and b is not None and a.hash != b.hash:
            fields = changed_fields(a, b)
            changes.append(Change(name, CHANGED, a.hash, b.hash, fields, field_diff(a, b, fields)))
    return InventoryDiff(
        new.server, new.info_name, new.kind, old.info_version, new.info_version, tuple(changes)
    )


def changed_fields(a: Definition, b: Definition) -> tuple[str, ...]:
    keys = list(a.doc) + [k for k in b.doc if k not in a.doc]
    return tuple(k for k in keys if _text(a.doc.get(k)) != _text(b.doc.get(k)))


def field_diff(a: Definition, b: Definition, fields: tuple[str, ...]) -> str:
    """A unified diff of `fields` of two definitions (strings as text, other values as
    indented JSON with sorted keys), cut to `DIFF_OUTPUT_CHARS`."""
    parts: list[str] = []
    for field in fields:
        old = _text(a.doc.get(field))[:DIFF_INPUT_CHARS].splitlines()
        new = _text(b.doc.get(field))[:DIFF_INPUT_CHARS].splitlines()
        lines = difflib.unified_diff(
            old,
            new,
            f"{a.name}.{field} ({a.hash[:12]})",
            f"{b.name}.{field} ({b.hash[:12]})",
            lineterm="",
            n=2,
        )
        parts.append("\n".join(lines))
    text = "\n".join(p for p in parts if p)
    if len(text) > DIFF_OUTPUT_CHARS:
        text = text[:DIFF_OUTPUT_CHARS] + "\n... (diff cut)"
    return text


def drift_findings(diff: InventoryDiff, new: Snapshot | None = None) -> list[Finding]:
    """One drift finding per change, ranked as the module docstring says."""
    out: list[Finding] = []
    moved = diff.version_changed
    version = _versions(diff)
    what = _noun(diff.kind)
    for c in diff.changes:
        if c.change == CHANGED:
            rule = UPDATED if moved else RUG_PULL
            definition = new.definitions.get(c.name) if new is not None else None
            field = c.fields[0] if len(c.fields) == 1 else ",".join(c.fields)
            excerpt = _excerpt(definition.doc.get(c.fields[0])) if definition and c.fields else ""
            message = f"{what} {c.name!r} changed ({', '.join(c.fields) or 'definition'}) {version}"
            if not moved:
                message += ": possible rug pull"
            out.append(_finding(rule, message, diff, c.name, field or None, excerpt))
        elif c.change == ADDED:
            rule = ADDED_NEW_VERSION if moved else ADDED_SAME_VERSION
            out.append(_finding(rule, f"{what} {c.name!r} added {version}", diff, c.name))
        else:
            out.append(_finding(REMOVED_TOOL, f"{what} {c.name!r} removed {version}", diff, c.name))
    return out


def pin_findings(
    server: str,
    current: Mapping[str, str],
    pins: Mapping[str, str],
    kind: str = "tools/list",
    *,
    approved: Collection[str] | None = None,
    version_moved: Collection[str] = (),
) -> list[Finding]:
    """A drift finding for each name whose current hash (`current`: name -> hash) is not its
    baseline (`pins`: name -> hash), for as long as that holds. `approved` names the baselines
    the user approved (`km tools approve`; the others are the first definition ever seen;
    None: all approved). A change under the same server version is high, one that came with
    a new version (`version_moved`) medium, as in `drift_findings`."""
    out: list[Finding] = []
    what = _noun(kind)
    for name in sorted(pins):
        now = current.get(name)
        if now is None or now == pins[name]:
            continue
        was = "approved" if approved is None or name in approved else "first seen"
        moved = name in version_moved
        rule = UNAPPROVED if was == "approved" else (UPDATED if moved else RUG_PULL)
        severity = MEDIUM if moved else DRIFT_RULES[UNAPPROVED][0]
        out.append(
            Finding(
                rule,
                severity,
                DRIFT,
                f"{what} {name!r} differs from the {was} definition "
                f"({pins[name][:12]} -> {now[:12]}"
                f"{', with a new server version' if moved else ''}); "
                "`km tools approve` once reviewed",
                tool=name,
                server=server,
            )
        )
    return out


def _finding(
    rule: str,
    message: str,
    diff: InventoryDiff,
    name: str,
    field: str | None = None,
    excerpt: str = "",
) -> Finding:
    severity, _ = DRIFT_RULES[rule]
    return Finding(
        rule, severity, DRIFT, message, tool=name, server=diff.server, field=field, excerpt=excerpt
    )


def _versions(diff: InventoryDiff) -> str:
    if diff.version_changed:
        return f"with a new server version ({diff.old_version} -> {diff.new_version})"
    return f"under the same server version ({diff.new_version})"


def _noun(kind: str) -> str:
    return {
        "tools/list": "tool",
        "prompts/list": "prompt",
        "resources/list": "resource",
        "resources/templates/list": "resource template",
    }.get(kind, "definition")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()
    except TypeError:  # nested too deep for orjson
        return canonical_text(value)


def _excerpt(value: object) -> str:
    from km.insight.text import visible

    return visible(_text(value), EXCERPT_CHARS)
