"""Wrapping and unwrapping the servers of an MCP client config as text edits (sans-IO).

`plan_wrap(text, km_command)` and `plan_unwrap(text)` return the edits to make and what
happens to each server; `apply_edits` makes them. An edit only ever touches a server's
`command` value and the inside of its `args` array (or adds `"args"` right after `command`),
so every other byte (comments, key order, indentation, fields km does not know) stays as it
was. Wrapping copies the server's name and command into `args` as their original JSON text, and
inserts its items with the array's own separators, so unwrapping removes exactly what was
inserted and gives back the original bytes.

Server tables are found wherever the known clients keep them: `mcpServers` (Claude Desktop,
Cursor, Windsurf, Claude Code), `projects.<path>.mcpServers` (Claude Code), `servers` (VS Code's
mcp.json) and `mcp.servers` (VS Code's settings.json).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from km.setup import wrap
from km.setup.jsonc import JsonArray, JsonObject, Member, Node, Scalar, parse

REMOTE_KEYS = ("url", "serverUrl", "httpUrl")
REMOTE_TYPES = frozenset({"http", "sse", "streamable-http", "streamablehttp", "streamable_http"})
_WHITESPACE_SUFFIX = re.compile(r"[ \t\r\n]*\Z")
_ADDED_ARGS = re.compile(r'\A,[ \t\r\n]*"args"[ \t\r\n]*:[ \t\r\n]*\Z')

Kind = Literal["stdio", "wrapped", "km", "remote", "invalid"]


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace `text[start:end]` with `replacement` (an insertion when start == end)."""

    start: int
    end: int
    replacement: str


@dataclass(frozen=True, slots=True)
class Server:
    """One entry of a server table, as found in the text."""

    table: str  # where the table is: "mcpServers", "projects[/path].mcpServers", "servers", ...
    name: str
    kind: Kind  # stdio: can be wrapped; wrapped: by km setup; km: runs km some other way
    reason: str  # why it is remote or invalid; empty otherwise
    member: Member


@dataclass(frozen=True, slots=True)
class Outcome:
    table: str
    name: str
    action: str  # wrapped, repaired, unwrapped, already wrapped, uses km, remote, ...
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    edits: tuple[Edit, ...]
    outcomes: tuple[Outcome, ...]

    @property
    def changes(self) -> bool:
        return bool(self.edits)


def find_servers(text: str) -> list[Server]:
    """Every server entry in every server table of the document (JsoncError if invalid)."""
    root = parse(text)
    if not isinstance(root, JsonObject):
        return []
    servers = []
    for table, node in _server_tables(root):
        for member in node.members:
            kind, reason = _classify(member.value)
            servers.append(Server(table, member.key, kind, reason, member))
    return servers


def server_command(server: Server) -> str | None:
    """The server's `command` value, if it has one."""
    entry = server.member.value
    command = entry.get("command") if isinstance(entry, JsonObject) else None
    if isinstance(command, Scalar) and isinstance(command.value, str):
        return command.value
    return None


def plan_wrap(text: str, km_command: str, stale: Callable[[str], bool] | None = None) -> Plan:
    """Edits that put `km_command --name <key> --` in front of every stdio server, and point
    servers wrapped by an earlier km at `km_command` when `stale(their km path)` says that path
    will not (or no longer does) run km: a versioned path an upgrade removes."""
    km_literal = json.dumps(km_command, ensure_ascii=False)
    edits: list[Edit] = []
    outcomes = []
    for server in find_servers(text):
        reason = server.reason
        action = {"stdio": "wrapped", "wrapped": "already wrapped", "km": "uses km"}.get(
            server.kind, server.kind if server.kind == "remote" else "skipped"
        )
        if server.kind == "stdio":
            assert isinstance(server.member.value, JsonObject)
            edits += _wrap_edits(text, server.member, server.member.value, km_literal)
        elif server.kind == "wrapped" and stale is not None:
            command = server_command(server)
            node = server.member.value
            assert command is not None and isinstance(node, JsonObject)
            if command != km_command and stale(command):
                value = node.get("command")
                assert value is not None
                edits.append(Edit(value.start, value.end, km_literal))
                action, reason = "repaired", f"was {command}"
        outcomes.append(Outcome(server.table, server.name, action, reason))
    return Plan(tuple(edits), tuple(outcomes))


def plan_unwrap(text: str) -> Plan:
    """Edits that take km out of every server `plan_wrap` wrapped, exactly."""
    edits: list[Edit] = []
    outcomes = []
    for server in find_servers(text):
        if server.kind == "wrapped":
            assert isinstance(server.member.value, JsonObject)
            edits += _unwrap_edits(text, server.member.value)
            outcomes.append(Outcome(server.table, server.name, "unwrapped"))
        elif server.kind in ("stdio", "km"):
            outcomes.append(Outcome(server.table, server.name, "not wrapped"))
    return Plan(tuple(edits), tuple(outcomes))


def apply_edits(text: str, edits: tuple[Edit, ...] | list[Edit]) -> str:
    """`text` with the (non-overlapping) edits made."""
    pieces = []
    pos = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        if edit.start < pos:
            raise ValueError(f"overlapping edits at offset {edit.start}")
        pieces += [text[pos : edit.start], edit.replacement]
        pos = edit.end
    pieces.append(text[pos:])
    return "".join(pieces)


def _server_tables(root: JsonObject) -> list[tuple[str, JsonObject]]:
    tables: list[tuple[str, Node | None]] = [
        ("mcpServers", root.get("mcpServers")),
        ("servers", root.get("servers")),
        ("mcp.servers", root.get("mcp.servers")),
    ]
    mcp = root.get("mcp")
    if isinstance(mcp, JsonObject):
        tables.append(("mcp.servers", mcp.get("servers")))
    projects = root.get("projects")
    if isinstance(projects, JsonObject):
        for project in projects.members:
            if isinstance(project.value, JsonObject):
                tables.append(
                    (f"projects[{project.key}].mcpServers", project.value.get("mcpServers"))
                )
    return [(name, node) for name, node in tables if isinstance(node, JsonObject)]


def _classify(entry: Node) -> tuple[Kind, str]:
    if not isinstance(entry, JsonObject):
        return "invalid", "not an object"
    for key in REMOTE_KEYS:
        if entry.get(key) is not None:
            return "remote", key
    kind = entry.get("type")
    if isinstance(kind, Scalar) and str(kind.value).lower() in REMOTE_TYPES:
        return "remote", f"type {kind.value}"
    command = entry.get("command")
    if not (isinstance(command, Scalar) and isinstance(command.value, str) and command.value):
        return "invalid", "no command"
    args = entry.get("args")
    arg_values: list[str] = []
    if args is not None:
        if not isinstance(args, JsonArray):
            return "invalid", "args is not a list"
        for item in args.items:
            if not (isinstance(item, Scalar) and isinstance(item.value, str)):
                return "invalid", "args has a value that is not a string"
            arg_values.append(item.value)
    if wrap.is_wrapped(command.value, arg_values):
        return "wrapped", ""
    if wrap.is_km(command.value):
        return "km", ""
    return "stdio", ""


def _wrap_edits(text: str, member: Member, entry: JsonObject, km_literal: str) -> list[Edit]:
    command_member = entry.member("command")
    assert command_member is not None
    command = command_member.value
    name_literal = text[member.key_start : member.key_end]
    command_literal = text[command.start : command.end]
    items = [json.dumps(wrap.NAME_FLAG), name_literal, json.dumps(wrap.END_OF_OPTIONS)]
    items.append(command_literal)
    edits = [Edit(command.start, command.end, km_literal)]
    args = entry.get("args")
    if isinstance(args, JsonArray) and args.items:
        first = args.items[0]
        separator = "," + (_whitespace_before(text, args.start + 1, first.start) or " ")
        edits.append(Edit(first.start, first.start, separator.join(items) + separator))
    elif isinstance(args, JsonArray):  # joined without spaces: unlike an "args" km added
        edits.append(Edit(args.start + 1, args.start + 1, ",".join(items)))
    else:
        indent = _whitespace_before(text, entry.start + 1, command_member.key_start)
        separator = "," + (indent if "\n" in indent else " ")
        added = f'{separator}"args": [{", ".join(items)}]'
        edits.append(Edit(command.end, command.end, added))
    return edits


def _unwrap_edits(text: str, entry: JsonObject) -> list[Edit]:
    command = entry.get("command")
    args_member = entry.member("args")
    assert command is not None and args_member is not None
    args = args_member.value
    assert isinstance(args, JsonArray)
    original = args.items[wrap.WRAP_PREFIX_LEN]
    original_literal = text[original.start : original.end]
    if len(args.items) > wrap.WRAP_PREFIX_LEN + 1:
        rest = args.items[wrap.WRAP_PREFIX_LEN + 1]
        return [
            Edit(command.start, command.end, original_literal),
            Edit(args.items[0].start, rest.start, ""),
        ]
    added = "[" + ", ".join(text[item.start : item.end] for item in args.items) + "]"
    if _ADDED_ARGS.match(text[command.end : args.start]) and text[args.start : args.end] == added:
        return [Edit(command.start, args.end, original_literal)]
    return [
        Edit(command.start, command.end, original_literal),
        Edit(args.items[0].start, original.end, ""),
    ]


def _whitespace_before(text: str, start: int, end: int) -> str:
    """The run of whitespace that ends at `end` (not going back past `start`)."""
    match = _WHITESPACE_SUFFIX.search(text, start, end)
    return match.group(0) if match else ""
