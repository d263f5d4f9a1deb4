"""Micro-benchmarks of the redactor on what MCP traffic looks like, with its floor.

Run with `.venv/bin/pytest benchmarks -k redact --benchmark-enable`. Each group times
`redact_payload` (default rules: pre-scan, then only the patterns whose needles occur) next to
`scan-only` (the one-pass pre-scan alone, `TextRedactor.scan_payload`): the clean cases show
what a message with nothing to redact costs, the `secret` cases one that holds a token.
"""

from __future__ import annotations

import json

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from km.redact import DEFAULT_RULES, redact_payload

_PROSE = (
    "The quick brown fox jumps over the lazy dog while the task scheduler keeps a desk "
    "calendar of 2026-12-06 events; see https://example.com/docs/page?id=42 for more. "
)


def _message(text: str, rpc_id: int = 7) -> bytes:
    result = {"content": [{"type": "text", "text": text}], "isError": False}
    return json.dumps({"jsonrpc": "2.0", "id": rpc_id, "result": result}).encode()


CASES: dict[str, bytes] = {
    "small-request": json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "get_current_time", "arguments": {"timezone": "Europe/Paris"}},
        }
    ).encode(),
    "1KB-clean-result": _message(_PROSE * 6),
    "64KB-clean-result": _message((_PROSE * 400)[: 64 * 1024 - 80]),
    "1KB-result-with-secret": _message(_PROSE * 5 + " token ghp_" + "a" * 36 + " end"),
    "64KB-result-with-secret": _message(
        (_PROSE * 400)[: 32 * 1024] + " xoxb-1234567890-abcdefghij " + (_PROSE * 200)[: 31 * 1024]
    ),
}


def _scan_only(payload: bytes) -> object:
    return DEFAULT_RULES.compiled.text.scan_payload(payload)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("what", ["redact_payload", "scan-only"])
def test_redact(benchmark: BenchmarkFixture, case: str, what: str) -> None:
    payload = CASES[case]
    fn = (lambda p: redact_payload(p, DEFAULT_RULES)) if what == "redact_payload" else _scan_only
    fn(payload)  # build the scanner before timing
    benchmark.group = f"redact {case} ({len(payload)} B)"
    benchmark.extra_info["bytes"] = len(payload)
    result = benchmark(fn, payload)
    if what == "redact_payload" and "secret" in case:
        assert b"[REDACTED:" in result
