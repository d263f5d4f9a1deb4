"""A raw JSON-RPC client over a child's stdio: spawn, write lines, read lines, every wait bounded.

Deliberately not the MCP SDK: its per-message overhead (pydantic, anyio) would hide what a relay
adds. `Child` writes bytes with `os.write` and reads with `poll` + `os.read`; both pipe ends are
non-blocking so no call can hang past its deadline. Every child runs in its own process group
and is registered until it is reaped, so `kill_all()` can end a relay and the server behind it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import orjson

from benchmarks import procs

READ_CHUNK = 1 << 20  # bytes per os.read; large so 16 MB lines cost few calls
CLOSE_GRACE_S = 15.0  # after closing stdin: km flushes its spool, socat waits its 0.5 s linger
TERM_GRACE_S = 3.0  # after SIGTERM to the process group, before SIGKILL
REAP_S = 5.0  # after SIGKILL, longest wait for the kernel to hand back the exit status
PROTOCOL_VERSION = "2025-06-18"

NS = 1_000_000_000


class BenchError(Exception):
    """A peer misbehaved or a wait ran out; the message says which."""


class BenchTimeout(BenchError):
    pass


class PeerClosed(BenchError):
    pass


_LIVE: set[Child] = set()


@dataclass(frozen=True, slots=True)
class Closed:
    """How a child ended after its stdin was closed."""

    exit_code: int | None  # None: it did not exit in time and was killed
    exit_s: float  # stdin closed -> the spawned process exited
    linger_s: float  # that exit -> the last process of its group ended (helpers saving)
    leftovers: int  # processes of its group still alive at the deadline, then killed


def deadline_in(seconds: float) -> int:
    return time.perf_counter_ns() + int(seconds * NS)


def _remaining_ms(deadline_ns: int) -> int:
    return max(0, (deadline_ns - time.perf_counter_ns()) // 1_000_000)


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Child:
    """One spawned command with piped stdin/stdout; stderr goes to `stderr_path`."""

    def __init__(
        self,
        argv: Sequence[str],
        stderr_path: str,
        env: Mapping[str, str] | None = None,
        own_session: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                bufsize=0,
                # A process group of its own (the harness kills and measures by group), in the
                # harness's session: an AI client spawns its servers, km among them, in its own
                # session, so on Linux they share its autogroup, the CPU scheduler's group.
                # `own_session` puts the child in a session, so an autogroup, of its own.
                start_new_session=own_session,
                process_group=None if own_session else 0,
                env=None if env is None else dict(env),
            )
        _LIVE.add(self)
        self.pid = self.proc.pid
        self._stdin: IO[bytes] | None = self.proc.stdin
        assert self._stdin is not None and self.proc.stdout is not None
        self._in_fd = self._stdin.fileno()
        self._out_fd = self.proc.stdout.fileno()
        _nonblocking(self._in_fd)
        _nonblocking(self._out_fd)
        self._rpoll = select.poll()
        self._rpoll.register(self._out_fd, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(self._in_fd, select.POLLOUT)
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a newline
        self.lines_sent = 0
        self.lines_received = 0
        self.bytes_received = 0
        self.eof = False

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes | memoryview, lines: int, deadline_ns: int) -> None:
        """Write all of `data` (holding `lines` newlines) before the deadline."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._in_fd, view)
            except BlockingIOError:
                if not self._wpoll.poll(_remaining_ms(deadline_ns)) and (
                    time.perf_counter_ns() >= deadline_ns
                ):
                    raise BenchTimeout(f"writing to {self.argv[0]}: peer stopped reading") from None
                continue
            except BrokenPipeError:
                raise PeerClosed(f"{self.argv[0]} closed its stdin") from None
            view = view[n:]
        self.lines_sent += lines

    # -- reading ---------------------------------------------------------------------------
    def wait_readable(self, deadline_ns: int) -> None:
        """Return once stdout has bytes or EOF to read; the first-byte clock of start-up."""
        if self._buf:
            return
        while not self._rpoll.poll(_remaining_ms(deadline_ns)):
            if time.perf_counter_ns() >= deadline_ns:
                raise BenchTimeout(f"{self.argv[0]} wrote nothing")

    def _fill(self, deadline_ns: int) -> int:
        while True:
            try:
                data = os.read(self._out_fd, READ_CHUNK)
            except BlockingIOError:
                if not self._rpoll.poll(_remaining_ms(deadline_ns)) and (
                    time.perf_counter_ns() >= deadline_ns
                ):
                    raise BenchTimeout(f"reading from {self.argv[0]}: no data in time") from None
                continue
            if not data:
                self.eof = True
                raise PeerClosed(f"{self.argv[0]} closed its stdout")
            self.bytes_received += len(data)
            self._buf += data
            return len(data)

    def readline(self, deadline_ns: int) -> bytes:
        """The next line, without its newline."""
        while True:
            nl = self._buf.find(b"\n", self._scanned)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                self._scanned = 0
                self.lines_received += 1
                return line
            self._scanned = len(self._buf)
            self._fill(deadline_ns)

    def count_lines(self, n: int, deadline_ns: int) -> int:
        """Read until `n` more newlines have arrived, keeping no data; returns the time (ns).

        Counts raw newlines (no parsing), so it is only for peers whose every line is a reply.
        """
        seen = self._buf.count(b"\n")
        self._buf.clear()
        self._scanned = 0
        last = time.perf_counter_ns()
        while seen < n:
            try:
                data = os.read(self._out_fd, READ_CHUNK)
            except BlockingIOError:
                if not self._rpoll.poll(_remaining_ms(deadline_ns)) and (
                    time.perf_counter_ns() >= deadline_ns
                ):
                    raise BenchTimeout(
                        f"reading from {self.argv[0]}: {seen} of {n} lines in time"
                    ) from None
                continue
            if not data:
                self.eof = True
                raise PeerClosed(f"{self.argv[0]} closed its stdout after {seen} of {n} lines")
            last = time.perf_counter_ns()
            self.bytes_received += len(data)
            seen += data.count(b"\n")
        self.lines_received += seen
        return last

    def request(self, rpc_id: int, line: bytes, deadline_ns: int) -> bytes:
        """Write one request line (with its newline) and return the response with `rpc_id`."""
        self.write(line, 1, deadline_ns)
        return self.read_response(rpc_id, deadline_ns)

    def read_response(self, rpc_id: int, deadline_ns: int) -> bytes:
        while True:
            reply = self.readline(deadline_ns)
            msg = orjson.loads(reply)
            if isinstance(msg, dict) and msg.get("id") == rpc_id and "method" not in msg:
                if "error" in msg:
                    raise BenchError(f"request {rpc_id} failed: {reply[:200]!r}")
                return reply
            # a server notification or server-to-client request: not ours, read on

    def initialize(self, deadline_ns: int) -> None:
        """MCP handshake, then one `ping` so the server's post-initialize notices have passed."""
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "km-bench", "version": "0"},
            },
        }
        self.request(0, orjson.dumps(init) + b"\n", deadline_ns)
        self.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n', 1, deadline_ns)
        self.request(-1, b'{"jsonrpc":"2.0","id":-1,"method":"ping"}\n', deadline_ns)

    # -- lifecycle -------------------------------------------------------------------------
    def peak_rss(self) -> tuple[int, ...]:
        """Peak RSS (VmHWM) of the process we spawned, then of each of its forks, in bytes."""
        return procs.family_peak_rss(self.pid)

    def close(self, grace_s: float = CLOSE_GRACE_S) -> Closed:
        """Close stdin, read stdout to EOF, reap, wait for the rest of its process group (a
        relay's helpers may still be saving); then TERM, then KILL whatever is left."""
        t0 = time.perf_counter_ns()
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.close()
            self._stdin = None
        deadline = t0 + int(grace_s * NS)
        try:
            while not self.eof:
                self.lines_received += self._buf.count(b"\n")
                self._buf.clear()
                self._fill(deadline)
        except PeerClosed:
            pass
        except BenchTimeout:
            leftovers = len(procs.group_members(self.pid))
            self.kill()
            return Closed(None, (time.perf_counter_ns() - t0) / NS, 0.0, leftovers)
        self.lines_received += self._buf.count(b"\n")
        self._buf.clear()
        try:
            code: int | None = self.proc.wait(max(0.0, (deadline - time.perf_counter_ns()) / NS))
        except subprocess.TimeoutExpired:
            code = None
        exited = time.perf_counter_ns()
        left = procs.wait_group_empty(self.pid, deadline) if code is not None else []
        closed = Closed(code, (exited - t0) / NS, (time.perf_counter_ns() - exited) / NS, len(left))
        self.kill()
        return closed

    def kill(self) -> None:
        """End the whole process group (relay and server) and any other descendant, bounded,
        and release the pipes."""
        doomed = procs.descendants(self.pid) if self.proc.returncode is None else []
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(REAP_S)
        # the server may outlive a relay that exited: sweep the group and the tree either way
        self._signal_group(signal.SIGKILL)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for f in (self._stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._stdin = None
        _LIVE.discard(self)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def kill_all() -> None:
    """Kill every child still registered (harness teardown, also on error)."""
    for child in list(_LIVE):
        child.kill()
