"""The filter language: what each piece of text parses to, the errors, and the predicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from km.insight.filter import (
    All,
    And,
    Compare,
    FilterError,
    HasFinding,
    Match,
    Not,
    Or,
    Text,
    effective_status,
    matches,
    parse,
)

NOW = 1_800_000_000 * 10**9


def root(text: str) -> object:
    return parse(text, now_ns=NOW).root


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", All()),
        ("   ", All()),
        ("tool:git_status", Match("tool", "git_status")),
        ("tool:git_*", Match("tool", "git_*", glob=True)),
        ("tool:git\\*", Match("tool", "git*")),
        ('tool:"my tool*"', Match("tool", "my tool*")),
        ("server:github", Match("server", "github")),
        ("session:3f2a*", Match("session_id", "3f2a*", glob=True)),
        ("method:tools/call", Match("method", "tools/call")),
        ("kind:Request", Match("kind", "request")),
        ("status:tool-error", Match("status", "tool-error")),
        ("dir:c2s", Match("direction", "c2s")),
        ("direction:s2c", Match("direction", "s2c")),
        ("risk>=70", Compare("risk", ">=", 70)),
        ("risk:70", Compare("risk", "=", 70)),
        ("risk:>=70", Compare("risk", ">=", 70)),
        ("risk!=0", Not(Compare("risk", "=", 0))),
        ("latency>500ms", Compare("latency_us", ">", 500_000)),
        ("latency>1.5s", Compare("latency_us", ">", 1_500_000)),
        ("latency<800us", Compare("latency_us", "<", 800)),
        ("latency>20", Compare("latency_us", ">", 20_000)),
        ("size>=1k", Compare("size", ">=", 1024)),
        ("size<2MiB", Compare("size", "<", 2 * 1024 * 1024)),
        ("tokens>2k", Compare("tokens", ">", 2000)),
        ("since:1h", Compare("ts_ns", ">=", NOW - 3600 * 10**9)),
        ("since:30m", Compare("ts_ns", ">=", NOW - 1800 * 10**9)),
        ("until:2d", Compare("ts_ns", "<", NOW - 2 * 86400 * 10**9)),
        ("finding:high", HasFinding("high")),
        ("finding:P1*", HasFinding("P1*", glob=True)),
        ('"error message"', Text("error message")),
        ('"say \\"hi\\""', Text('say "hi"')),
        ("timeout", Text("timeout")),
        ("-tool:x", Not(Match("tool", "x"))),
        ("NOT tool:x", Not(Match("tool", "x"))),
        ("tool:a tool:b", And((Match("tool", "a"), Match("tool", "b")))),
        ("tool:a AND tool:b", And((Match("tool", "a"), Match("tool", "b")))),
        ("tool:a OR tool:b", Or((Match("tool", "a"), Match("tool", "b")))),
        (
            "kind:error OR tool:a tool:b",
            Or((Match("kind", "error"), And((Match("tool", "a"), Match("tool", "b"))))),
        ),
        (
            "(tool:a OR tool:b) -status:ok",
            And((Or((Match("tool", "a"), Match("tool", "b"))), Not(Match("status", "ok")))),
        ),
        ("(tool:a)", Match("tool", "a")),
        ("or", Text("or")),
    ],
)
def test_parses(text: str, expected: object) -> None:
    assert root(text) == expected


def test_iso_times() -> None:
    stamp = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    ns = int(stamp.timestamp()) * 10**9
    assert root("since:2026-12-01T15:00:00Z") == Compare("ts_ns", ">=", ns)
    assert root("until:2026-12-01T15:00") == Compare("ts_ns", "<", ns)
    assert root("since:2026-12-01") == Compare("ts_ns", ">=", ns - 15 * 3600 * 10**9)
    plus2 = timezone(timedelta(hours=2))
    local = parse("since:2026-12-01T17:00", now_ns=NOW, tz=plus2).root
    assert local == Compare("ts_ns", ">=", ns)
    assert root("since:2026-12-01T16:00:00+01:00") == Compare("ts_ns", ">=", ns)


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("tool:", 6, "a value after `tool:`"),
        ("toool:x", 1, "a known field, not 'toool'"),
        ("kind:reqest", 6, "kind to be one of request, response"),
        ("status:done", 8, "status to be one of ok, error, tool-error, pending, cancelled"),
        ("latency>fast", 9, "a number such as 500ms"),
        ("size>=1q", 7, "a number such as 2048, 64k or 1m"),
        ("since:yesterday", 7, "a time such as 30m"),
        ("since>1h", 1, "`since:` followed by a time"),
        ("tool>3", 1, "comparisons are for numbers"),
        ('"unclosed', 10, 'a closing `"` for the quote at column 1'),
        ('""', 1, "some text between the quotes"),
        ("(tool:a", 8, "`)` to close the `(` at column 1"),
        ("tool:a)", 7, "no `)` without a matching `(`"),
        ("tool:a OR", 10, "a term"),
        ("OR tool:a", 1, "a term before and after AND / OR"),
        ("tool:a AND AND tool:b", 12, "a term before and after AND / OR"),
        ("()", 2, "a term before `)`"),
        ("NOT", 4, "a term"),
        ("risk>99999999999999999999", 6, "a number below"),
    ],
)
def test_errors_name_the_column(text: str, column: int, expected: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text, now_ns=NOW)
    error = caught.value
    assert error.column == column, str(error)
    assert expected in error.expected
    assert str(error).startswith(f"bad filter at column {column}: ")
    assert "\n" not in str(error)
    assert error.exit_code == 2
    lines = error.caret().splitlines()
    assert lines[1].index("^") - 2 == column - 1


def test_nul_and_overlong_filters_are_errors() -> None:
    with pytest.raises(FilterError, match="column 3"):
        parse("ab\x00", now_ns=NOW)
    with pytest.raises(FilterError, match="at most"):
        parse("x" * 5000, now_ns=NOW)


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "server": "github",
        "session_id": "s1",
        "kind": "response",
        "direction": "s2c",
        "ts_ns": NOW,
        "size": 10,
        "payload": b'{"result": "Permission Denied"}',
    }
    base.update(fields)
    return base


def test_predicate() -> None:
    def check(text: str, ev: dict[str, Any]) -> bool:
        return matches(parse(text, now_ns=NOW), ev)

    assert check("tool:git_*", event(tool="git_status"))
    assert not check("tool:git_*", event(tool="github"))
    assert not check("tool:git_*", event())
    assert check("-tool:git_*", event())  # no tool: not a git_ tool
    assert check('"permission denied"', event())
    assert not check('"permission  denied"', event())
    assert check("latency>=500ms", event(latency_us=500_000))
    assert not check("latency>500ms", event(latency_us=500_000))
    assert not check("latency>500ms", event())
    assert check(
        "finding:high", event(findings=[{"rule": "R1", "kind": "risk", "severity": "high"}])
    )
    assert check("finding:R*", event(findings=[{"rule": "R1", "kind": "risk", "severity": "low"}]))
    assert not check("finding:*", event())
    assert check("status:ok OR kind:request", event(status="ok"))
    assert check("since:1h", event(ts_ns=NOW - 10))
    assert not check("until:1h", event(ts_ns=NOW - 10))


def test_effective_status() -> None:
    assert effective_status("request", None, replied=False, cancelled=False) == "pending"
    assert effective_status("request", None, replied=True, cancelled=False) is None
    assert effective_status("request", None, replied=True, cancelled=True) == "cancelled"
    assert (
        effective_status("response", "tool-error", replied=False, cancelled=False) == "tool-error"
    )
    assert effective_status("notification", None, replied=False, cancelled=False) is None


def test_columns() -> None:
    flt = parse('tool:x latency>1 "t" finding:y', now_ns=NOW)
    assert flt.columns() == {"tool", "latency_us", "payload", "findings"}
