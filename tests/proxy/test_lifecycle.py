"""The proxy's lifecycle with real processes: exit codes, signals, stdin close, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import KM, ProcessReaper
from tests.proxy.procs import pid_alive, read_line, wait_gone

PY = sys.executable
PIPES = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}


def run_km(
    args: list[str], env: dict[str, str], stdin: bytes = b"", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*KM, *args], input=stdin, capture_output=True, env=env, timeout=timeout)


def script(body: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(body)]


def test_exit_code_is_the_servers(km_env: dict[str, str]) -> None:
    result = run_km([PY, "-c", "import sys; sys.exit(7)"], km_env)
    assert result.returncode == 7
    assert result.stdout == b""


def test_death_by_signal_is_128_plus_n(km_env: dict[str, str]) -> None:
    result = run_km(["sh", "-c", "kill -9 $$"], km_env)
    assert result.returncode == 128 + signal.SIGKILL


def test_missing_command_is_one_line_and_127(km_env: dict[str, str]) -> None:
    result = run_km(["km-no-such-command-xyz", "--flag"], km_env)
    assert result.returncode == 127
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "km-no-such-command-xyz" in lines[0] and "not found" in lines[0]


def test_not_executable_is_126(km_env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "not-executable"
    target.write_text("#!/bin/sh\necho hi\n")
    target.chmod(0o644)
    result = run_km([str(target)], km_env)
    assert result.returncode == 126
    assert str(target) in result.stderr.decode()


def test_command_found_on_path_like_a_shell(km_env: dict[str, str], tmp_path: Path) -> None:
    tool = tmp_path / "my-mcp-tool"
    tool.write_text('#!/bin/sh\necho "from path: $*"\n')
    tool.chmod(0o755)
    km_env["PATH"] = f"{tmp_path}{os.pathsep}{km_env['PATH']}"
    result = run_km(["my-mcp-tool", "--help", "-v"], km_env)
    assert result.returncode == 0
    assert result.stdout == b"from path: --help -v\n"


def test_server_options_reach_the_server_after_double_dash(km_env: dict[str, str]) -> None:
    result = run_km(["--name", "x", "--", "sh", "-c", 'echo "$@"', "sh", "--name", "-V"], km_env)
    assert result.stdout == b"--name -V\n"


def test_stderr_passes_through_unchanged(km_env: dict[str, str]) -> None:
    payload = b"\xff\xfe not utf-8 \x00 and a partial line"
    code = f"import os; os.write(2, {payload!r})"
    result = run_km([PY, "-c", code], km_env)
    assert result.stderr.startswith(payload)
    assert result.stdout == b""


def test_stdin_close_reaches_the_server_and_km_exits_with_its_status(
    km_env: dict[str, str],
) -> None:
    body = """
        import sys
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(b"read %d bytes\\n" % len(data))
        sys.exit(3)
    """
    result = run_km(script(body), km_env, stdin=b'{"jsonrpc":"2.0","method":"a"}\n' * 10)
    assert result.stdout == b"read 310 bytes\n"
    assert result.returncode == 3


def test_server_ignoring_eof_and_sigterm_is_killed(
    km_env: dict[str, str], reaper: ProcessReaper
) -> None:
    body = """
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(1, b"%d\\n" % os.getpid())
        sys.stdin.buffer.read()
        for _ in range(600):
            time.sleep(0.05)
    """
    proc = reaper.popen([*KM, *script(body)], env=km_env, **PIPES)
    assert proc.stdin is not None and proc.stdout is not None
    server_pid = int(read_line(proc.stdout.fileno(), 10))
    reaper.track(server_pid)
    proc.stdin.close()
    assert proc.wait(15) == 128 + signal.SIGKILL
    assert wait_gone(server_pid, 5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM])
def test_signals_reach_the_server(
    km_env: dict[str, str], reaper: ProcessReaper, signum: int
) -> None:
    body = """
        import os, signal, sys
        def on_signal(n, _):
            os.write(1, b"got %d\\n" % n)
            sys.exit(40)
        for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
            signal.signal(s, on_signal)
        os.write(1, b"ready\\n")
        signal.pause()
    """
    proc = reaper.popen([*KM, *script(body)], env=km_env, **PIPES)
    assert proc.stdout is not None
    assert read_line(proc.stdout.fileno(), 10) == b"ready\n"
    proc.send_signal(signum)
    assert read_line(proc.stdout.fileno(), 10) == b"got %d\n" % signum
    assert proc.wait(10) == 40


def test_sigterm_to_km_leaves_no_orphan_even_when_server_ignores_it(
    km_env: dict[str, str], reaper: ProcessReaper
) -> None:
    body = """
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen(["sleep", "60"])
        os.write(1, b"%d %d\\n" % (os.getpid(), grandchild.pid))
        for _ in range(600):
            time.sleep(0.05)
    """
    proc = reaper.popen([*KM, *script(body)], env=km_env, **PIPES)
    assert proc.stdout is not None
    server_pid, grandchild_pid = map(int, read_line(proc.stdout.fileno(), 10).split())
    reaper.track(server_pid)
    reaper.track(grandchild_pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 128 + signal.SIGKILL
    assert wait_gone(server_pid, 5)
    assert wait_gone(grandchild_pid, 5)


def test_sigkill_to_km_takes_the_server_down(km_env: dict[str, str], reaper: ProcessReaper) -> None:
    body = """
        import os, time
        os.write(1, b"%d\\n" % os.getpid())
        for _ in range(600):
            time.sleep(0.05)
    """
    proc = reaper.popen([*KM, *script(body)], env=km_env, **PIPES)
    assert proc.stdout is not None
    server_pid = int(read_line(proc.stdout.fileno(), 10))
    reaper.track(server_pid)
    assert pid_alive(server_pid)
    proc.kill()
    proc.wait(5)
    assert wait_gone(server_pid, 5)


def test_server_exit_flushes_its_last_output(km_env: dict[str, str]) -> None:
    body = """
        import os
        os.write(1, b"x" * 1_000_000 + b"\\n" + b"tail without newline")
    """
    result = run_km(script(body), km_env)
    assert result.returncode == 0
    assert result.stdout == b"x" * 1_000_000 + b"\n" + b"tail without newline"


def test_client_going_away_stops_the_server(km_env: dict[str, str], reaper: ProcessReaper) -> None:
    body = """
        import os, sys, time
        os.write(2, b"%d\\n" % os.getpid())
        for _ in range(2000):
            try:
                os.write(1, b'{"jsonrpc":"2.0","method":"tick"}\\n')
            except BrokenPipeError:
                sys.exit(9)
            time.sleep(0.005)
    """
    proc = reaper.popen([*KM, *script(body)], env=km_env, **PIPES)
    assert proc.stdout is not None and proc.stderr is not None
    server_pid = int(read_line(proc.stderr.fileno(), 10))
    reaper.track(server_pid)
    read_line(proc.stdout.fileno(), 10)
    proc.stdout.close()  # the client stops reading: km must wind the server down
    code = proc.wait(15)
    assert code in (0, 9, 128 + signal.SIGTERM, 128 + signal.SIGKILL)
    assert wait_gone(server_pid, 5)
