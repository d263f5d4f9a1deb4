"""The I/O of `km replay`: a fresh server process, fed the plan's messages in order, each
request waited for (within a timeout) while server-to-client requests get minimal answers.

The server runs in its own process group with stdin/stdout pipes (its stderr is discarded: the
report is what is printed); a reader thread turns its stdout into lines on a queue, so every
wait has a deadline. At the end the server's stdin is closed, then it gets `GRACE_S` to exit
before SIGTERM and SIGKILL to its group: every wait bounded, no orphan.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from km.errors import CommandNotExecutable, CommandNotFound
from km.replay.plan import Step, answer, decode, difference

DEFAULT_TIMEOUT_S = 30.0  # for one reply (a server's first answer can be slow to start)
GRACE_S = 2.0  # after closing its stdin, before SIGTERM
KILL_WAIT_S = 2.0
LINGER_S = 5.0  # after the last step, for server requests the capture saw and replay has not
_EOF = object()


@dataclass(slots=True)
class Outcome:
    label: str
    diff: str | None = None  # None: the answers agree
    note: str | None = None  # a reply that never came, a step not sent, ...


@dataclass(slots=True)
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    requests: int = 0
    notifications: int = 0
    answered: int = 0  # server-to-client requests the replayer answered

    @property
    def differing(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.diff is not None or o.note is not None]


class ServerProcess:
    def __init__(self, command: Sequence[str]) -> None:
        try:
            self.proc = subprocess.Popen(
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError:
            raise CommandNotFound(command[0]) from None
        except PermissionError as exc:
            raise CommandNotExecutable(command[0], exc.strerror or "permission denied") from None
        self.lines: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(_EOF)

    def send(self, data: bytes) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data.rstrip(b"\n") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def close(self) -> None:
        proc = self.proc
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(KILL_WAIT_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._reader.join(KILL_WAIT_S)
        if proc.stdout is not None:
            proc.stdout.close()


def replay(
    steps: Sequence[Step],
    command: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    ignore: Sequence[tuple[object, ...]] = (),
    asks: int = 0,
) -> Report:
    """Send `steps` to a fresh `command`; `asks` is how many requests the server made in the
    capture: after the last step the replayer waits (at most `LINGER_S`) until it has answered
    as many, since a server may ask after the client's last message."""
    report = Report()
    server = ServerProcess(command)
    gone: str | None = None
    try:
        for step in steps:
            if step.is_request:
                report.requests += 1
            else:
                report.notifications += 1
            if step.problem:
                report.outcomes.append(Outcome(step.label, note=step.problem))
                continue
            if gone is not None:
                if step.is_request:
                    report.outcomes.append(Outcome(step.label, note=gone))
                continue
            if not server.send(step.payload):
                gone = f"not sent: the server closed its input (exit {server.proc.poll()})"
                report.outcomes.append(Outcome(step.label, note=gone))
                continue
            if not step.is_request:
                continue
            reply, gone = _await_reply(server, step.rpc_id, timeout_s, report)
            if reply is None:
                report.outcomes.append(Outcome(step.label, note=gone))
                if gone and gone.startswith("no reply"):
                    gone = None  # a slow answer: carry on with the next message
                continue
            if step.expected is None:
                report.outcomes.append(
                    Outcome(step.label, note="answered, but no reply was captured to compare")
                )
                continue
            diff = difference(step.label, decode(step.expected), reply, ignore)
            report.outcomes.append(Outcome(step.label, diff=diff))
        if gone is None and report.answered < asks:
            _linger(server, asks, report)
    finally:
        server.close()
    return report


def _linger(server: ServerProcess, asks: int, report: Report) -> None:
    deadline = time.monotonic() + LINGER_S
    while report.answered < asks and (left := deadline - time.monotonic()) > 0:
        try:
            line = server.lines.get(timeout=left)
        except queue.Empty:
            return
        if line is _EOF:
            return
        assert isinstance(line, bytes)
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "method" in doc and "id" in doc:
            server.send(orjson.dumps(answer(doc)))
            report.answered += 1


def _await_reply(
    server: ServerProcess, rpc_id: Any, timeout_s: float, report: Report
) -> tuple[dict[str, Any] | None, str | None]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, f"no reply within {timeout_s:g} s"
        try:
            line = server.lines.get(timeout=left)
        except queue.Empty:
            return None, f"no reply within {timeout_s:g} s"
        if line is _EOF:
            code = (
                server.proc.wait(KILL_WAIT_S) if server.proc.poll() is None else server.proc.poll()
            )
            return None, f"the server exited (code {code}) before replying"
        assert isinstance(line, bytes)
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a stray line: not a message, not ours to judge here
        if not isinstance(doc, dict):
            continue
        if "method" in doc:
            if "id" in doc:  # a request from the server: answer it minimally
                server.send(orjson.dumps(answer(doc)))
                report.answered += 1
            continue
        if doc.get("id") == rpc_id and type(doc.get("id")) is type(rpc_id):
            return doc, None
