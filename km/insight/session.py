"""`SessionAnalyzer`: every insight analyzer over one session's captured events. Sans-IO.

Fed each event of one session in capture order (direction, kind, method, rpc id, the payload as
it crossed the wire, and the correlator's link), `observe` returns the event's insight fields
(`Insight`: tool, status, tokens, risk) and the analyzer accumulates the session's meaning:

- `server_info`: `serverInfo` name and version and the protocol version from `initialize`;
- `listings`: every complete listing (`tools/list`, `prompts/list`, `resources/list`,
  `resources/templates/list`), its pages put together by `nextCursor`;
- `snapshots`: the latest inventory snapshot per list kind, each compared with the one before
  it (the previous listing in this session, after `notifications/*/list_changed` or not; for the
  first listing, the `baseline` the shell supplies from earlier sessions): `diffs`;
- `findings` (with the id of the event they came from): poisoning over each listing whose
  definitions are new, drift, the reasons of each `tools/call` at or above medium risk, and
  the toxic-flow finding once a session has combined its three capabilities;
- `problems`: counted, visible problems (a listing that is not valid JSON, bad names, a looping
  cursor, a `tools/call` without a name, ...); never an exception.

What changed since the last `take_news()` (server info, listings, findings) is what the shell
stores alongside the event that brought it. Per event the work is a few dict look-ups; only the
requests and replies that carry meaning are parsed (a `tools/call` exchange is one parse each
way plus the risk and token functions). Nothing here runs on the forwarding path.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from km.insight.definitions import LIST_KINDS, TOOLS, AssembledList, ListAssembler
from km.insight.findings import MEDIUM, Finding, at_least
from km.insight.identity import TARGETED, target_of
from km.insight.inventory import InventoryDiff, Snapshot, compare, drift_findings
from km.insight.poisoning import scan_tools
from km.insight.risk import assess_call, toxic_flow
from km.insight.tokens import content_tokens, tool_list_tokens

DEFAULT_MAX_PENDING = 10_000  # requests remembered while waiting for their reply
MAX_FINDINGS = 10_000  # findings kept per session (the rest counted in `problems`)

REQUEST, RESPONSE, ERROR, NOTIFICATION = "request", "response", "error", "notification"
INVALID = "invalid"
C2S, S2C = "c2s", "s2c"
OK, FAILED, TOOL_ERROR = "ok", "error", "tool-error"
CALL = "tools/call"
INITIALIZE = "initialize"
ROOTS = "roots/list"
LIST_CHANGED = {
    "notifications/tools/list_changed": "tools/list",
    "notifications/prompts/list_changed": "prompts/list",
    "notifications/resources/list_changed": "resources/list",
}

Baseline = Callable[[str, str | None, str], Snapshot | None]
"""(km server name, serverInfo name, list method) -> the last snapshot from earlier sessions."""

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def _no_tokens(kind: str, method: str | None, payload: bytes) -> int | None:
    return None


class Insight(NamedTuple):
    """The insight fields of one event (stored in the spool's `events` columns)."""

    tool: str | None = None
    status: str | None = None
    tokens: int | None = None
    risk: int | None = None


NOTHING = Insight()


@dataclass(frozen=True, slots=True)
class ServerInfo:
    name: str | None
    version: str | None
    protocol: str | None


@dataclass(frozen=True, slots=True)
class Listing:
    """A complete listing, its snapshot, what changed since the previous one (None for the
    first ever seen), and for tools the tokens the list adds to every conversation."""

    event_id: str
    listing: AssembledList
    snapshot: Snapshot
    diff: InventoryDiff | None
    tokens: int | None
    after_list_changed: bool
    definition_tokens: Mapping[str, int] = field(default_factory=dict)  # tools: per name


@dataclass(frozen=True, slots=True)
class Found:
    """A finding and the id of the event it came from (None for session-wide findings)."""

    event_id: str | None
    finding: Finding


News = ServerInfo | Listing | Found


@dataclass(slots=True)
class _Request:
    method: str
    target: str | None = None
    cursor: object = None
    risk: int | None = None


@dataclass(slots=True)
class _Flow:
    used: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # tool -> definition
    reported: bool = False


class SessionAnalyzer:
    """Everything the insight core learns from one session; see the module docstring."""

    def __init__(
        self,
        server: str,
        *,
        baseline: Baseline | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        on_initialize: Callable[[], None] | None = None,
        count_tokens: bool = True,
    ) -> None:
        """`baseline` gives earlier sessions' snapshots; `on_initialize` is called once, at
        the first `initialize` request. With `count_tokens` False, every `tokens` field is
        None (a shell that counts them elsewhere: the capture process leaves them to whoever
        reads the spool, km/spool/tokens.py, and to the API's ingest)."""
        self.server = server
        self._on_initialize = on_initialize
        self._content_tokens = content_tokens if count_tokens else _no_tokens
        self._count_tokens = count_tokens
        self.server_info: ServerInfo | None = None
        self.snapshots: dict[str, Snapshot] = {}
        self.listings: list[Listing] = []
        self.findings: list[Found] = []
        self.problems: Counter[str] = Counter()
        self._baseline = baseline
        self._max_pending = max_pending
        self._requests: OrderedDict[str, _Request] = OrderedDict()
        self._assemblers: dict[str, ListAssembler] = {}
        self._list_changed: set[str] = set()
        self._tools: dict[str, Mapping[str, Any]] = {}  # name -> raw definition (latest list)
        self._roots: tuple[str, ...] = ()
        self._flow = _Flow()
        self._news: list[News] = []
        self._problems_changed = False

    # -- the shell's side ----------------------------------------------------------------

    def take_news(self) -> list[News]:
        """What was learnt since the last call (empty list when nothing)."""
        news = self._news
        if news:
            self._news = []
        return news

    @property
    def has_news(self) -> bool:
        return bool(self._news)

    @property
    def diffs(self) -> list[InventoryDiff]:
        return [item.diff for item in self.listings if item.diff is not None]

    def observe(
        self,
        event_id: str,
        direction: str,
        kind: str,
        method: str | None,
        payload: bytes,
        link_id: str | None = None,
        truncated: bool = False,
        secret_kinds: Mapping[str, int] | None = None,
    ) -> Insight:
        """One event; `method` of a reply is its request's (as the correlator links it).
        `secret_kinds`: what the redactor found in a `tools/call` request (kind -> count)."""
        if kind == REQUEST:
            if method in TARGETED or method in LIST_KINDS:
                return self._request(event_id, method, payload, truncated, secret_kinds)
            if method == ROOTS and direction == S2C:
                self._remember(event_id, _Request(ROOTS))
            elif method == INITIALIZE and self._on_initialize is not None:
                start, self._on_initialize = self._on_initialize, None
                start()
            tokens = None if truncated else self._content_tokens(REQUEST, method, payload)
            return NOTHING if tokens is None else Insight(None, None, tokens)
        if kind in (RESPONSE, ERROR):
            request = self._requests.pop(link_id, None) if link_id is not None else None
            return self._reply(event_id, direction, kind, method, payload, truncated, request)
        if kind == NOTIFICATION and method in LIST_CHANGED:
            self._list_changed.add(LIST_CHANGED[method])
        elif kind == INVALID:
            self._problem("not-json-rpc")  # kept whole in the event; nothing more to read
        return NOTHING

    # -- requests ------------------------------------------------------------------------

    def _request(
        self,
        event_id: str,
        method: str,
        payload: bytes,
        truncated: bool,
        secret_kinds: Mapping[str, int] | None,
    ) -> Insight:
        params = None if truncated else _params(payload)
        if method in LIST_KINDS:
            cursor = params.get("cursor") if isinstance(params, Mapping) else None
            self._remember(event_id, _Request(method, cursor=cursor))
            return NOTHING
        target = target_of(method, params)
        if method != CALL:
            self._remember(event_id, _Request(method, target))
            return Insight(target)
        if target is None:
            self._problem("call-without-name" if not truncated else "call-truncated")
        arguments = params.get("arguments") if isinstance(params, Mapping) else None
        definition = self._tools.get(target) if target is not None else None
        call = assess_call(
            definition, arguments, roots=self._roots, secret_kinds=secret_kinds, name=target
        )
        for reason in call.reasons:
            if at_least(reason.severity, MEDIUM):
                self._find(event_id, reason, target)
        if target is not None:
            self._flow_step(event_id, target, definition or {"name": target})
        self._remember(event_id, _Request(method, target, risk=call.score))
        tokens = None if truncated else self._content_tokens(REQUEST, method, payload)
        return Insight(target, None, tokens, call.score)

    def _remember(self, event_id: str, request: _Request) -> None:
        requests = self._requests
        requests[event_id] = request
        if len(requests) > self._max_pending:
            requests.popitem(last=False)
            self._problem("requests-forgotten")

    # -- replies -------------------------------------------------------------------------

    def _reply(
        self,
        event_id: str,
        direction: str,
        kind: str,
        method: str | None,
        payload: bytes,
        truncated: bool,
        request: _Request | None,
    ) -> Insight:
        if kind == ERROR:
            if request is None:
                return Insight(None, FAILED)
            return Insight(request.target, FAILED, None, request.risk)
        tokens = None if truncated else self._content_tokens(RESPONSE, method, payload)
        if request is None:
            if method == INITIALIZE and direction == S2C:
                self._initialized(payload, truncated)
            return Insight(None, OK, tokens)
        if request.method == CALL:
            if truncated:
                failed = b'"isError":true' in payload
            else:
                result = _result(payload)
                failed = isinstance(result, Mapping) and result.get("isError") is True
            return Insight(request.target, TOOL_ERROR if failed else OK, tokens, request.risk)
        if request.method in LIST_KINDS:
            self._page(event_id, request, payload, truncated)
        elif request.method == ROOTS:
            self._roots_reply(payload, truncated)
        return Insight(request.target, OK, tokens)

    def _initialized(self, payload: bytes, truncated: bool) -> None:
        result = None if truncated else _result(payload)
        if not isinstance(result, Mapping):
            self._problem("initialize-unreadable")
            return
        info = result.get("serverInfo")
        info = info if isinstance(info, Mapping) else {}
        name, version = info.get("name"), info.get("version")
        protocol = result.get("protocolVersion")
        self.server_info = ServerInfo(
            name if type(name) is str else None,
            version if type(version) is str else None,
            protocol if type(protocol) is str else None,
        )
        self._news.append(self.server_info)

    def _roots_reply(self, payload: bytes, truncated: bool) -> None:
        result = None if truncated else _result(payload)
        roots = result.get("roots") if isinstance(result, Mapping) else None
        if isinstance(roots, list):
            uris = [r.get("uri") for r in roots if isinstance(r, Mapping)]
            self._roots = tuple(u for u in uris if type(u) is str)

    def _page(self, event_id: str, request: _Request, payload: bytes, truncated: bool) -> None:
        method = request.method
        if truncated:
            self._problem("listing-too-large")
            return
        try:
            doc = _loads(payload)
        except _JSONDecodeError:
            self._problem("listing-not-json")
            return
        result = doc.get("result") if isinstance(doc, dict) else None
        assembler = self._assemblers.get(method)
        if assembler is None:
            assembler = self._assemblers[method] = ListAssembler(LIST_KINDS[method])
        done = assembler.page(request.cursor, result)
        if done is not None:
            self._listing(event_id, done)

    def _listing(self, event_id: str, listing: AssembledList) -> None:
        kind = listing.kind.method
        for problem in listing.problems:
            self._problem(f"listing-{problem.code}")
        info = self.server_info
        snapshot = Snapshot(
            self.server,
            info.name if info else None,
            info.version if info else None,
            kind,
            listing.definitions,
        )
        previous = self.snapshots.get(kind)
        if previous is None and self._baseline is not None:
            previous = self._baseline(self.server, snapshot.info_name, kind)
        diff = compare(previous, snapshot) if previous is not None else None
        after_change = kind in self._list_changed
        self._list_changed.discard(kind)
        tokens = None
        per_definition: dict[str, int] = {}
        if kind == TOOLS.method:
            self._tools = {name: d.doc for name, d in listing.definitions.items()}
            if self._count_tokens:
                per_definition = {n: tool_list_tokens([doc]) for n, doc in self._tools.items()}
                tokens = sum(per_definition.values())  # tool_list_tokens: the sum over tools
            self._scan(event_id, listing, previous)
        self.snapshots[kind] = snapshot
        item = Listing(event_id, listing, snapshot, diff, tokens, after_change, per_definition)
        self.listings.append(item)
        self._news.append(item)
        if diff is not None:
            for finding in drift_findings(diff, snapshot):
                self._find(event_id, finding)

    def _scan(self, event_id: str, listing: AssembledList, previous: Snapshot | None) -> None:
        """Poisoning over a tools listing; findings only for definitions new to the previous
        snapshot (a list seen again unchanged is not reported twice)."""
        known = previous.hashes if previous is not None else {}
        fresh = {n for n, d in listing.definitions.items() if known.get(n) != d.hash}
        if not fresh and listing.definitions:
            return
        for finding in scan_tools(list(listing.entries), server=self.server):
            if finding.tool is None or finding.tool in fresh or finding.tool not in known:
                self._find(event_id, finding)

    def _problem(self, code: str) -> None:
        self.problems[code] += 1
        self._problems_changed = True

    @property
    def problems_changed(self) -> bool:
        """Whether `problems` changed since the last `take_problems` (for the shell to save)."""
        return self._problems_changed

    def take_problems(self) -> dict[str, int]:
        self._problems_changed = False
        return dict(self.problems)

    # -- findings ------------------------------------------------------------------------

    def _flow_step(self, event_id: str, tool: str, definition: Mapping[str, Any]) -> None:
        """Once per tool newly used in this session: does the session now combine reading
        private data, taking in untrusted content and sending out? Reported once."""
        flow = self._flow
        if flow.reported or tool in flow.used:
            return
        flow.used[tool] = definition
        finding = toxic_flow(list(flow.used.values()), server=self.server)
        if finding is not None:
            flow.reported = True
            self._find(event_id, finding)

    def _find(self, event_id: str | None, finding: Finding, tool: str | None = None) -> None:
        if len(self.findings) >= MAX_FINDINGS:
            self._problem("findings-over-limit")
            return
        if finding.server is None or (finding.tool is None and tool is not None):
            finding = _with_server(finding, self.server, tool)
        found = Found(event_id, finding)
        self.findings.append(found)
        self._news.append(found)


def _with_server(finding: Finding, server: str, tool: str | None) -> Finding:
    return Finding(
        finding.rule,
        finding.severity,
        finding.kind,
        finding.message,
        finding.tool if finding.tool is not None else tool,
        finding.server if finding.server is not None else server,
        finding.field,
        finding.span,
        finding.excerpt,
    )


def _params(payload: bytes) -> object:
    try:
        doc = _loads(payload)
    except _JSONDecodeError:
        return None
    return doc.get("params") if type(doc) is dict else None


def _result(payload: bytes) -> object:
    try:
        doc = _loads(payload)
    except _JSONDecodeError:
        return None
    return doc.get("result") if type(doc) is dict else None
