"""Tool, prompt and resource definitions: canonical JSON, hashes, paginated lists put together.
Sans-IO.

A definition's identity is the SHA-256 of its canonical JSON: only the fields that mean
something to the model (for a tool: name, title, description, inputSchema, outputSchema,
annotations), keys sorted at every depth, no whitespace. Anything else a server adds (`_meta`,
`icons`, ...) does not change the hash.

`ListAssembler` puts the pages of one list method (`tools/list`, ...) together: a request without
a cursor starts a listing, each page's `nextCursor` names the next page, a page without one ends
it. A cursor that comes back (a loop) or more than `MAX_PAGES` pages end the listing with what
was gathered and a problem. Bad input (a result that is not an object, entries that are not
objects, names that are not strings or appear twice) becomes a counted `ListProblem`, never an
exception: the raw entries are kept for the poisoning scan, the inventory holds what it can.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

MAX_PAGES = 1000  # pages in one listing before it is cut (a server paging forever)
MAX_ENTRIES = 100_000  # entries in one listing before the rest is ignored

TOOL_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
PROMPT_FIELDS = ("name", "title", "description", "arguments")
RESOURCE_FIELDS = ("uri", "name", "title", "description", "mimeType", "annotations")
TEMPLATE_FIELDS = ("uriTemplate", "name", "title", "description", "mimeType", "annotations")


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256, not `hashlib`'s: hashlib loads OpenSSL's libcrypto (~3.4 MB
    resident and ~8 ms), which the capture process needs for nothing else. Same digests."""
    import importlib

    for name in ("_sha2", "_sha256"):  # 3.12+, 3.11
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


_sha256 = _builtin_sha256()


@dataclass(frozen=True, slots=True)
class ListKind:
    """One list method: where its entries sit in the result, what names an entry, which fields
    make its definition."""

    method: str
    key: str  # the result's member holding the entries
    id_field: str  # the member naming an entry (unique within a listing)
    fields: tuple[str, ...]


TOOLS = ListKind("tools/list", "tools", "name", TOOL_FIELDS)
PROMPTS = ListKind("prompts/list", "prompts", "name", PROMPT_FIELDS)
RESOURCES = ListKind("resources/list", "resources", "uri", RESOURCE_FIELDS)
TEMPLATES = ListKind(
    "resources/templates/list", "resourceTemplates", "uriTemplate", TEMPLATE_FIELDS
)
LIST_KINDS: dict[str, ListKind] = {k.method: k for k in (TOOLS, PROMPTS, RESOURCES, TEMPLATES)}


@dataclass(frozen=True, slots=True)
class ListProblem:
    """Something wrong with a listing: `code` (stable, e.g. `duplicate-name`) and a message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Definition:
    """One entry of a listing: its name, the hash and text of its canonical JSON, and the
    canonical fields as parsed values (`doc`)."""

    name: str
    hash: str
    canonical: str
    doc: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AssembledList:
    """A whole listing: every page's entries in order (`entries`, raw JSON values, for the
    poisoning scan), the definitions by name (first of duplicates), and its problems."""

    kind: ListKind
    entries: tuple[object, ...]
    definitions: Mapping[str, Definition]
    problems: tuple[ListProblem, ...]
    pages: int


def canonical_json(definition: Mapping[str, Any], fields: Sequence[str] = TOOL_FIELDS) -> str:
    """The canonical JSON text of `definition`: `fields` only, keys sorted, no whitespace."""
    doc = {name: definition[name] for name in fields if name in definition}
    return canonical_text(doc)


def definition_hash(canonical: str) -> str:
    """The SHA-256 (hex) of a canonical JSON text."""
    digest: str = _sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return digest


def make_definition(
    entry: Mapping[str, Any], kind: ListKind = TOOLS, name: str | None = None
) -> Definition:
    """The `Definition` of one entry (`name` defaults to its `id_field`, which must be a str)."""
    doc = {field: entry[field] for field in kind.fields if field in entry}
    canonical = canonical_text(doc)
    key = name if name is not None else str(entry[kind.id_field])
    return Definition(key, definition_hash(canonical), canonical, doc)


def build_definitions(
    entries: Sequence[object], kind: ListKind = TOOLS
) -> tuple[dict[str, Definition], list[ListProblem]]:
    """Definitions by name from raw entries, with a problem per bad entry (skipped)."""
    out: dict[str, Definition] = {}
    problems: list[ListProblem] = []
    label = kind.key
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            problems.append(ListProblem("not-an-object", f"{label}[{index}] is not an object"))
            continue
        name = entry.get(kind.id_field)
        if type(name) is not str or not name:
            problems.append(
                ListProblem(
                    "bad-name",
                    f"{label}[{index}].{kind.id_field} is not a non-empty string "
                    f"({type(name).__name__})",
                )
            )
            continue
        if name in out:
            problems.append(
                ListProblem("duplicate-name", f"{label}[{index}]: {name[:80]!r} listed twice")
            )
            continue
        out[name] = make_definition(entry, kind, name)
    return out, problems


class ListAssembler:
    """Pages of one list method put together by `nextCursor`; see the module docstring."""

    __slots__ = ("_entries", "_expect", "_ignored", "_kind", "_max_pages", "_pages", "_seen")

    def __init__(self, kind: ListKind, max_pages: int = MAX_PAGES) -> None:
        self._kind = kind
        self._max_pages = max_pages
        self._entries: list[object] = []
        self._pages = 0
        self._expect: str | None = None  # the cursor the next page should be asked with
        self._seen: set[str] = set()  # cursors of the listing in progress (loop guard)
        self._ignored = 0  # pages outside any listing (after a loop or a cut) ignored so far

    @property
    def ignored_pages(self) -> int:
        return self._ignored

    def page(self, cursor: object, result: object) -> AssembledList | None:
        """One response page (the request's `params.cursor`, the response's `result`).
        Returns the whole listing when this page ends it, else None."""
        problems: list[ListProblem] = []
        if cursor is None:
            self._restart()
        elif self._expect is None or cursor != self._expect:
            self._ignored += 1  # a page of a listing already ended (loop, cut) or never begun
            return None
        if not isinstance(result, Mapping):
            self._restart()
            return self._finish([ListProblem("not-an-object", "the result is not an object")])
        entries = result.get(self._kind.key)
        if isinstance(entries, list):
            room = MAX_ENTRIES - len(self._entries)
            if len(entries) > room:
                problems.append(
                    ListProblem("too-many-entries", f"over {MAX_ENTRIES} entries; rest ignored")
                )
                entries = entries[: max(0, room)]
            self._entries.extend(entries)
        else:
            problems.append(ListProblem("not-a-list", f"result.{self._kind.key} is not a list"))
        self._pages += 1
        next_cursor = result.get("nextCursor")
        if next_cursor is None:
            return self._finish(problems)
        if type(next_cursor) is not str:
            problems.append(ListProblem("bad-cursor", "nextCursor is not a string"))
            return self._finish(problems)
        if next_cursor in self._seen:
            problems.append(
                ListProblem(
                    "cursor-loop",
                    f"nextCursor {next_cursor[:40]!r} came back after {self._pages} pages",
                )
            )
            return self._finish(problems)
        if self._pages >= self._max_pages:
            problems.append(ListProblem("too-many-pages", f"cut after {self._pages} pages"))
            return self._finish(problems)
        self._seen.add(next_cursor)
        self._expect = next_cursor
        return None

    def _restart(self) -> None:
        self._entries = []
        self._pages = 0
        self._expect = None
        self._seen = set()

    def _finish(self, problems: list[ListProblem]) -> AssembledList:
        definitions, more = build_definitions(self._entries, self._kind)
        done = AssembledList(
            self._kind, tuple(self._entries), definitions, tuple(problems + more), self._pages
        )
        self._restart()
        return done


def canonical_text(value: object) -> str:
    """Canonical JSON of any JSON value: sorted keys, no whitespace, at any depth."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # nested past orjson's depth limit, or a lone surrogate
        return "".join(_iter_encode(value))


def _iter_encode(value: object) -> list[str]:
    """Canonical JSON without recursion, for documents too deep for orjson (up to the 1024
    levels orjson will parse, or deeper from other parsers)."""
    out: list[str] = []
    stack: list[object] = [value]
    close = object()  # marks "write the pending closer": the str pushed right after it
    while stack:
        item = stack.pop()
        if item is close:
            out.append(str(stack.pop()))
            continue
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            keys = sorted(item)
            parts: list[object] = []
            for n, key in enumerate(keys):
                prefix = "," if n else ""
                parts.append(_Raw(prefix + json.dumps(str(key)) + ":"))
                parts.append(item[key])
            out.append("{")
            stack.extend(("}", close))
            stack.extend(reversed(parts))
        elif isinstance(item, list):
            parts = []
            for n, element in enumerate(item):
                if n:
                    parts.append(_Raw(","))
                parts.append(element)
            out.append("[")
            stack.extend(("]", close))
            stack.extend(reversed(parts))
        else:
            out.append(json.dumps(item))
    return out


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
