"""What a `tools/call`'s arguments hold, for the risk rules: the walk over any JSON value
(bounded), the pre-scan that picks the rules worth trying, and the path, command, SQL and URL
checks. Used by `km.insight.risk` only. Sans-IO, pure, never raises on odd JSON.

Arguments are walked to MAX_DEPTH levels and MAX_NODES values; the first MAX_TEXT characters
of each string and MAX_SCAN characters per call are examined. Past that nothing is reported:
the bounds keep a hostile 1 MB argument from costing more than a normal call.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

from km.insight.risk_rules import RULES, RULES_BY_ID, RiskRule

# Bounds on what one call's arguments cost to examine.
MAX_DEPTH = 32
MAX_NODES = 2000
MAX_TEXT = 16 * 1024
MAX_SCAN = 256 * 1024
MAX_URLS = 32  # per string


RULES_OF_TARGET: dict[str, tuple[RiskRule, ...]] = {}
for _rule in RULES:
    RULES_OF_TARGET[_rule.target] = (*RULES_OF_TARGET.get(_rule.target, ()), _rule)
_NOTHING: list[RiskRule] = []


@cache
def pattern_of(rule_id: str) -> re.Pattern[str]:
    """A rule's compiled pattern, compiled on first use (compiling them all costs ~40 ms of
    start-up that most processes importing this never need)."""
    rule = RULES_BY_ID[rule_id]
    return re.compile(rule.pattern or "", 0 if rule.target == "secret" else re.IGNORECASE)


def rules_of(target: str) -> tuple[RiskRule, ...]:
    """The rules of one target with a pattern, in table order."""
    return tuple(r for r in RULES_OF_TARGET.get(target, ()) if r.pattern)


_PATH_RULES = rules_of("path")
_COMMAND_RULES = rules_of("command")
_SQL_RULES = rules_of("sql")
_HOST_RULES = rules_of("host")
_URL_RULES = rules_of("url")

_URL_FIND = re.compile(r"\b(?:https?|wss?|ftp)://[^\s\"'<>\\`]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}(?::\d+)?(?:[/?#]|$)", re.IGNORECASE)
_TRAVERSAL = re.compile(r"(?:^|/|%2f)(?:\.\.|%2e%2e)(?:/|%2f|$)", re.IGNORECASE)
_SQL_LEAD = re.compile(
    r"^\s*(?:--[^\n]*\n\s*)*(?:select|insert|update|delete|drop|truncate|alter|create|grant"
    r"|revoke|with|begin|merge|replace|exec)\b",
    re.IGNORECASE,
)
_DRIVE = re.compile(r"^[a-z]:[\\/]", re.IGNORECASE)
_HOME_ROOT = re.compile(r"^(?:/home/[^/]+|/users/[^/]+|/root)/?$", re.IGNORECASE)


# The pre-scan: one pass over all of a call's strings finds which rules' needles they hold; a
# rule none of whose needles is there is not tried (most calls hold none at all). RE2's Set
# (google-re2, a dependency of the redactor too) answers in ~0.7 us for a short call, where
# Hyperscan's Python binding costs ~1.5 us and one `in` per needle ~10 us.
URL_NEEDLE = "://"
_RULES_OF_NEEDLE: dict[str, set[str]] = {URL_NEEDLE: set()}
for _rule in RULES:
    for _needle in _rule.needles:
        _RULES_OF_NEEDLE.setdefault(_needle, set()).add(_rule.id)
_NEEDLES = sorted(_RULES_OF_NEEDLE)
_RE2_MAX_MEM = 32 << 20  # bytes, for the lazily built DFA
_scanner: list[Callable[[bytes], list[int]]] = []


def _build_scanner() -> Callable[[bytes], list[int]]:
    """bytes -> indexes into _NEEDLES of the needles they hold, ASCII letters in any case."""
    try:
        import re2

        options = re2.Options()
        options.encoding = re2.Options.Encoding.LATIN1  # one byte, one character: any bytes
        options.max_mem = _RE2_MAX_MEM
        matcher = re2.Set.SearchSet(options)
        for needle in _NEEDLES:
            matcher.Add(("(?i)" + re.escape(needle)).encode())
        matcher.Compile()
        match = matcher.Match
        return lambda data: match(data) or []
    except Exception:  # no RE2 here, or a build that rejects a pattern: the loop is right too
        return _loop_scanner()


def _loop_scanner() -> Callable[[bytes], list[int]]:
    encoded = [(i, n.encode()) for i, n in enumerate(_NEEDLES)]
    return lambda data: [i for i, n in encoded if n in data.lower()]


def candidates(texts: list[str]) -> tuple[set[str], bool]:
    """The ids of the rules whose needles `texts` hold, and whether they hold a URL."""
    if not _scanner:
        _scanner.append(_build_scanner())
    blob = "\n".join(texts).replace("\\", "/")
    if "%" in blob:
        from urllib.parse import unquote

        blob += "\n" + unquote(blob)
    ids: set[str] = set()
    urls = False
    for index in _scanner[0](blob.encode("utf-8", "surrogatepass")):
        needle = _NEEDLES[index]
        ids |= _RULES_OF_NEEDLE[needle]
        urls = urls or needle == URL_NEEDLE
    return ids, urls


# Key names that say what a string argument is.
def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_COMMAND_KEYS = _names(
    "command cmd commands script shell code bash sh powershell pwsh commandline command_line"
    " cmdline exec run program argv args"
)
_SQL_KEYS = _names("sql query statement statements stmt sql_query raw_sql")
_PATH_KEYS = _names(
    "path paths file files filename file_name filepath file_path dir directory folder source"
    " destination dest src dst target cwd root location uri include exclude pattern"
)
_URL_KEYS = _names("url urls uri endpoint host hostname webhook webhook_url link href")


def strings(arguments: object) -> list[tuple[str, str, str]]:
    """(field path, key name, text) for each string in `arguments`, within the bounds."""
    out: list[tuple[str, str, str]] = []
    if isinstance(arguments, dict) and len(arguments) <= 16 and "command" not in arguments:
        # The common shape: a flat object of short strings and numbers.
        for k, v in arguments.items():
            if isinstance(v, str) and isinstance(k, str) and len(v) <= MAX_TEXT:
                out.append(("arguments." + k, k.lower(), v))
            elif isinstance(v, dict | list | tuple | str) or not isinstance(k, str):
                out.clear()
                break  # not flat after all: the general walk below
        else:
            return out
    stack: list[tuple[str, str, object, int]] = [("arguments", "", arguments, 0)]
    nodes = 0
    budget = MAX_SCAN
    while stack and nodes < MAX_NODES and budget > 0:
        field, key, value, depth = stack.pop()
        nodes += 1
        if isinstance(value, str):
            text = value[: min(MAX_TEXT, budget)]
            budget -= len(text)
            out.append((field, key, text))
        elif depth >= MAX_DEPTH:
            continue
        elif isinstance(value, Mapping):
            items = list(value.items())[:MAX_NODES]
            command = _joined_command(value)
            if command is not None:
                out.append((f"{field}.command", "command", command))
            for k, v in reversed(items):
                name = k if isinstance(k, str) else str(k)
                stack.append((f"{field}.{name}", name.lower(), v, depth + 1))
        elif isinstance(value, list | tuple):
            for i in range(min(len(value), MAX_NODES) - 1, -1, -1):
                stack.append((f"{field}[{i}]", key, value[i], depth + 1))
    return out


def _joined_command(value: Mapping[Any, Any]) -> str | None:
    """`{"command": "rm", "args": ["-rf", "/"]}` as the one command line it runs."""
    command = value.get("command", value.get("cmd"))
    args = value.get("args", value.get("argv"))
    if (
        isinstance(command, str)
        and isinstance(args, list)
        and args
        and all(isinstance(a, str) for a in args)
    ):
        return " ".join([command, *args])[:MAX_TEXT]
    return None


def _looks_like_path(text: str, key: str) -> bool:
    if key in _PATH_KEYS:
        return True
    first = text[:1]
    if first in ("/", "~", "\\") or text.startswith(("./", "../", "file:")):
        return True
    if _DRIVE.match(text):
        return True
    return ("/" in text or "\\" in text) and " " not in text and "://" not in text


def _normalise_path(text: str) -> str:
    path = text.replace("\\", "/")
    if path[:7].lower() == "file://":
        from urllib.parse import unquote

        path = unquote(path[7:])
        if path.startswith("localhost/"):
            path = path[9:]
        if _DRIVE.match(path[1:]):
            path = path[1:]  # file:///C:/x
    return path


@lru_cache(maxsize=64)
def _root_paths(roots: tuple[object, ...]) -> tuple[str, ...]:
    out = []
    for root in roots:
        if isinstance(root, str) and root:
            path = _normalise_path(root).rstrip("/") or "/"
            out.append(path.lower() if _DRIVE.match(path) else path)
    return tuple(out)


def _outside_roots(path: str, roots: tuple[str, ...]) -> bool:
    if path.startswith("~"):
        return not any(_HOME_ROOT.match(r) for r in roots)
    if _DRIVE.match(path):
        path = path.lower()
    elif not path.startswith("/"):
        return False  # relative to the server's working directory: unknown
    if "/." in path or "//" in path:
        import posixpath

        path = posixpath.normpath(path)
    return not any(root == "/" or path == root or path.startswith(root + "/") for root in roots)


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    authority = authority.rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0].lower()
    return authority.split(":", 1)[0].lower().rstrip(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host or not (host[0].isdigit() or ":" in host):
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class Matches:
    """One call's scan: the rules worth trying (those whose needles the arguments hold), and
    the first match of each rule found (a rule counts once), in the order found."""

    __slots__ = ("commands", "found", "paths", "roots", "sql", "traversal", "urls")

    def __init__(self, candidates: set[str], urls: bool, roots: tuple[str, ...]) -> None:
        self.found: dict[str, tuple[str, str, tuple[int, int] | None]] = {}
        if candidates:
            self.paths = [r for r in _PATH_RULES if r.id in candidates]
            self.commands = [r for r in _COMMAND_RULES if r.id in candidates]
            self.sql = [r for r in _SQL_RULES if r.id in candidates]
        else:
            self.paths = self.commands = self.sql = _NOTHING
        self.traversal = "R208" in candidates
        self.urls = urls
        self.roots = roots

    def add(self, rule_id: str, field: str, text: str, span: tuple[int, int] | None) -> None:
        if rule_id not in self.found:
            self.found[rule_id] = (field, text, span)

    def search(self, rules: list[RiskRule], field: str, text: str) -> None:
        for rule in rules:
            if rule.id not in self.found:
                match = pattern_of(rule.id).search(text)
                if match:
                    self.found[rule.id] = (field, text, match.span())


def _scan_path(m: Matches, field: str, text: str) -> None:
    path = _normalise_path(text)
    if m.paths:
        m.search(m.paths, field, path)
    if m.traversal:
        traversal = _TRAVERSAL.search(path)
        if traversal:
            m.add("R208", field, path, traversal.span())
    if m.roots and _outside_roots(path, m.roots):
        m.add("R209", field, path, None)


def _scan_urls(m: Matches, field: str, text: str, key: str) -> None:
    urls: list[tuple[str, tuple[int, int]]] = []
    if "://" in text:
        for i, match in enumerate(_URL_FIND.finditer(text)):
            if i >= MAX_URLS:
                break
            urls.append((match.group(), match.span()))
        if text[:7].lower() == "file://":
            _scan_path(m, field, text)
    elif key in _URL_KEYS and _BARE_HOST.match(text):
        urls.append(("http://" + text, (0, len(text))))
    for url, span in urls:
        host = _host_of(url)
        ip = _ip(host)
        local = host in ("localhost", "0.0.0.0", "::") or host.endswith(".localhost")
        local = local or (ip is not None and ip.is_loopback)
        for rule in _HOST_RULES:
            if pattern_of(rule.id).search(host):
                m.add(rule.id, field, text, span)
        for rule in _URL_RULES:
            if pattern_of(rule.id).search(url):
                m.add(rule.id, field, text, span)
        if not local and host:
            m.add("R501", field, text, span)
            if ip is not None and ip.is_global:
                m.add("R502", field, text, span)


def scan_string(m: Matches, field: str, key: str, text: str, command_tool: bool) -> None:
    if (m.urls and "://" in text) or key in _URL_KEYS:
        _scan_urls(m, field, text, key)
    if key in _COMMAND_KEYS or (command_tool and (" " in text or "|" in text)):
        if m.commands:
            m.search(m.commands, field, text)
        if m.paths:
            m.search(m.paths, field, text.replace("\\", "/"))
    elif "://" not in text and _looks_like_path(text, key):
        _scan_path(m, field, text)
    if m.sql and (key in _SQL_KEYS or _SQL_LEAD.match(text)):
        m.search(m.sql, field, text)


def roots_of(roots: Sequence[object]) -> tuple[str, ...]:
    """Root paths from `file://` URIs, plain paths, or `roots/list` entries (`{"uri": ...}`)."""
    if not roots or isinstance(roots, str | bytes):
        return ()
    try:
        return _root_paths(tuple(roots))
    except TypeError:  # unhashable entries: `{"uri": ..., "name": ...}` objects, or junk
        uris = (r.get("uri") if isinstance(r, Mapping) else r for r in roots)
        return _root_paths(tuple(u for u in uris if isinstance(u, str)))
