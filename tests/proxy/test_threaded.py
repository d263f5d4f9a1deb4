"""The portable relay (`KM_RELAY=threads`, what Windows runs) passes the same forwarding,
lifecycle and capture tests as the fork-based one, with the same real processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KM
from tests.proxy.test_capture_e2e import (
    test_km_never_writes_to_stdout_itself_even_when_failing,
    test_unwritable_spool_never_stops_the_session,
)
from tests.proxy.test_forwarding import (
    test_both_directions_at_once_keep_order,
    test_every_byte_round_trips_unchanged_through_cat,
    test_partial_line_is_forwarded_before_its_newline,
)
from tests.proxy.test_lifecycle import (
    test_command_found_on_path_like_a_shell,
    test_death_by_signal_is_128_plus_n,
    test_exit_code_is_the_servers,
    test_missing_command_is_one_line_and_127,
    test_not_executable_is_126,
    test_server_exit_flushes_its_last_output,
    test_server_ignoring_eof_and_sigterm_is_killed,
    test_server_options_reach_the_server_after_double_dash,
    test_signals_reach_the_server,
    test_stderr_passes_through_unchanged,
    test_stdin_close_reaches_the_server_and_km_exits_with_its_status,
)

REUSED = (
    test_both_directions_at_once_keep_order,
    test_command_found_on_path_like_a_shell,
    test_death_by_signal_is_128_plus_n,
    test_every_byte_round_trips_unchanged_through_cat,
    test_exit_code_is_the_servers,
    test_km_never_writes_to_stdout_itself_even_when_failing,
    test_missing_command_is_one_line_and_127,
    test_not_executable_is_126,
    test_partial_line_is_forwarded_before_its_newline,
    test_server_exit_flushes_its_last_output,
    test_server_ignoring_eof_and_sigterm_is_killed,
    test_server_options_reach_the_server_after_double_dash,
    test_signals_reach_the_server,
    test_stderr_passes_through_unchanged,
    test_stdin_close_reaches_the_server_and_km_exits_with_its_status,
    test_unwritable_spool_never_stops_the_session,
)


@pytest.fixture
def km_env(km_env: dict[str, str]) -> dict[str, str]:
    """The shared environment, with the portable relay."""
    return {**km_env, "KM_RELAY": "threads"}


RESPONDER = """
import json, sys
for line in sys.stdin:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": json.loads(line)["id"], "result": {}}))
    sys.stdout.write("\\n")
    sys.stdout.flush()
"""


def test_captures_every_message_paired_and_redacted(
    km_env: dict[str, str], spool_path: Path
) -> None:
    requests = [
        {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"password": f"pw{i}"}}
        for i in range(200)
    ]
    wire = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    result = subprocess.run(
        [*KM, sys.executable, "-c", RESPONDER],
        input=wire,
        capture_output=True,
        env=km_env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"\n") == 200
    with sqlite3.connect(spool_path) as conn:
        rows = conn.execute(
            "SELECT direction, kind, method, latency_us, payload FROM events"
            " WHERE kind != 'dropped' ORDER BY seq"
        ).fetchall()
    assert len(rows) == 400
    responses = [r for r in rows if r[0] == "s2c"]
    assert len(responses) == 200
    assert all(r[2] == "tools/call" and r[3] is not None for r in responses)  # paired
    assert not any(b"pw1" in r[4] for r in rows)  # redacted before the disk
