"""The filter language compiled to SQL (sans-IO: text and parameters, no connection).

`to_sql(filter, target, params)` returns a boolean SQL expression over the events table (under
`target.alias`) and appends its bound values to `params`: `?` placeholders for SQLite,
`$n` (numbered after what `params` already holds) for PostgreSQL through asyncpg. Every term
compiles to an expression that is never NULL, so `NOT` means exactly what `matches` means.

Targets: the spool (SQLite, one `payload` BLOB column), and the server's events table
(SQLite or PostgreSQL: `payload_json`/`payload_text`/`payload_bytes`, every row scoped by
`account_id`). A column the table does not have yet (an older spool) compiles to "no value":
terms on it match nothing, their negations everything; no error.
"""

from __future__ import annotations

from dataclasses import dataclass

from km.insight.filter import (
    All,
    And,
    Compare,
    Filter,
    HasFinding,
    Match,
    Node,
    Not,
    Or,
    Text,
    fold,
    glob_parts,
)

SQLITE = "sqlite"
POSTGRES = "postgres"
SPOOL = "spool"
SERVER = "server"
NOT_NULL = frozenset({"server", "session_id", "kind", "direction", "ts_ns", "size"})
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class SqlTarget:
    """Where the SQL runs: `dialect` (sqlite, postgres), `layout` (spool, server), the events
    table's alias in the caller's query, which columns it has (None: all this km knows) and
    whether a `findings` table exists."""

    dialect: str = SQLITE
    layout: str = SPOOL
    alias: str = "e"
    columns: frozenset[str] | None = None
    findings: bool = True
    # Columns read from elsewhere: `{"server": "s.server"}` when filtering sessions by their
    # events (equal by construction), so such a term is decided once per session.
    elsewhere: tuple[tuple[str, str], ...] = ()

    def has(self, column: str) -> bool:
        return self.columns is None or column in self.columns or column in dict(self.elsewhere)


SPOOL_TARGET = SqlTarget(SQLITE, SPOOL)
SERVER_SQLITE = SqlTarget(SQLITE, SERVER)
SERVER_POSTGRES = SqlTarget(POSTGRES, SERVER)


def to_sql(flt: Filter, target: SqlTarget, params: list[object]) -> str:
    """A boolean SQL expression for `flt`; its values are appended to `params`."""
    return _Compiler(target, params).node(flt.root)


class _Compiler:
    def __init__(self, target: SqlTarget, params: list[object]) -> None:
        self.t = target
        self.params = params
        self.pg = target.dialect == POSTGRES
        self.true = "TRUE" if self.pg else "1"
        self.false = "FALSE" if self.pg else "0"

    def param(self, value: object, cast: str = "") -> str:
        self.params.append(value)
        return f"${len(self.params)}{cast}" if self.pg else "?"

    def col(self, column: str) -> str:
        for name, expr in self.t.elsewhere:
            if name == column:
                return expr
        return f"{self.t.alias}.{column}"

    def node(self, node: Node) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(p) for p in node.parts) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(p) for p in node.parts) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.part)})"
        if isinstance(node, Match):
            return self.match(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Text):
            return self.text(node.needle)
        if isinstance(node, HasFinding):
            return self.finding(node)
        assert isinstance(node, All)
        return self.true

    # -- terms

    def value_test(self, expr: str, value: str, glob: bool) -> str:
        if not glob:
            return f"{expr} = {self.param(value)}"
        if self.pg:
            return f"{expr} LIKE {self.param(_like_pattern(value))}"
        return f"{expr} GLOB {self.param(_sqlite_glob(value))}"

    def match(self, node: Match) -> str:
        if node.column == "status" and node.value in ("pending", "cancelled"):
            return self.derived_status(node.value)
        if not self.t.has(node.column):
            return self.false
        test = self.value_test(self.col(node.column), node.value, node.glob)
        if node.column == "status":  # stored on replies only; requests have a derived one
            return (
                f"({self.col('kind')} <> 'request' AND {self.col('status')} IS NOT NULL AND {test})"
            )
        if node.column in NOT_NULL:
            return f"({test})"
        return f"({self.col(node.column)} IS NOT NULL AND {test})"

    def compare(self, node: Compare) -> str:
        if not self.t.has(node.column):
            return self.false
        value = self.param(node.value, "::bigint")
        expr = self.col(node.column)
        test = f"{expr} {node.op} {value}"
        if node.column in NOT_NULL:
            return f"({test})"
        return f"({expr} IS NOT NULL AND {test})"

    def linked(self, alias: str, condition: str) -> str:
        """EXISTS an event linked to this one (by `link_id`) that meets `condition`."""
        own_id = f"{self.col('id')}::text" if self.pg else self.col("id")
        scope = ""
        if self.t.layout == SERVER:
            scope = f" AND {alias}.account_id = {self.col('account_id')}"
        return (
            f"EXISTS (SELECT 1 FROM events {alias} WHERE {alias}.link_id = {own_id}{scope}"
            f" AND {condition})"
        )

    def derived_status(self, status: str) -> str:
        cancel = self.linked(
            "c", "c.kind = 'notification' AND c.method = 'notifications/cancelled'"
        )
        is_request = f"{self.col('kind')} = 'request'"
        if status == "cancelled":
            return f"({is_request} AND {cancel})"
        reply = self.linked("r", "r.kind IN ('response', 'error')")
        return f"({is_request} AND NOT {cancel} AND NOT {reply})"

    def text(self, needle: str) -> str:
        folded = fold(needle.encode("utf-8"))
        if not self.pg:
            if self.t.layout == SPOOL:
                payload = self.col("payload")
            else:
                payload = (
                    f"coalesce({self.col('payload_json')}, {self.col('payload_text')},"
                    f" {self.col('payload_bytes')})"
                )
            return f"(coalesce(instr(CAST(lower({payload}) AS BLOB), {self.param(folded)}), 0) > 0)"
        as_text = (
            f"translate(coalesce({self.col('payload_json')}::text, {self.col('payload_text')}),"
            f" '{_UPPER}', '{_UPPER.lower()}')"
        )
        in_text = f"coalesce(strpos({as_text}, {self.param(folded.decode('utf-8'))}) > 0, FALSE)"
        regex = self.param(_hex_regex(folded))
        in_bytes = f"coalesce(encode({self.col('payload_bytes')}, 'hex') ~ {regex}, FALSE)"
        return f"({in_text} OR {in_bytes})"

    def finding(self, node: HasFinding) -> str:
        if not self.t.findings:
            return self.false
        tests = " OR ".join(
            self.value_test(f"f.{key}", node.value, node.glob)
            for key in ("rule", "kind", "severity")
        )
        own_id = f"{self.col('id')}::text" if self.pg else self.col("id")
        event_id = "f.event_id::text" if self.pg else "f.event_id"
        scope = f" AND f.account_id = {self.col('account_id')}" if self.t.layout == SERVER else ""
        return f"EXISTS (SELECT 1 FROM findings f WHERE {event_id} = {own_id}{scope} AND ({tests}))"


def _sqlite_glob(pattern: str) -> str:
    out: list[str] = []
    for piece, wild in glob_parts(pattern):
        if wild:
            out.append(piece)
        elif piece in "*?[":
            out.append(f"[{piece}]")
        else:
            out.append(piece)
    return "".join(out)


def _like_pattern(pattern: str) -> str:
    out: list[str] = []
    for piece, wild in glob_parts(pattern):
        if wild:
            out.append("%" if piece == "*" else "_")
        elif piece in "%_\\":
            out.append("\\" + piece)
        else:
            out.append(piece)
    return "".join(out)


def _hex_regex(folded: bytes) -> str:
    """A regular expression over a payload's hex encoding that finds `folded` (already ASCII
    lower case) at a byte boundary, either case of each ASCII letter."""
    pieces: list[str] = []
    for byte in folded:
        low = f"{byte:02x}"
        if ord("a") <= byte <= ord("z"):
            pieces.append(f"(?:{low}|{byte - 32:02x})")
        else:
            pieces.append(low)
    return "^(?:..)*?" + "".join(pieces)
