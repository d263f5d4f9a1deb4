"""Start the MCP server as a child process with its stdin and stdout on pipes we hold.

Hand-rolled fork/exec rather than `subprocess` (17 ms to import here, on every MCP server
launch): the child puts itself in its own process group (so signals and clean-up reach the
whole tree, e.g. `npx` and the `node` it starts), asks Linux to SIGTERM it if km dies
(PR_SET_PDEATHSIG, so even `kill -9 km` leaves no orphan), restores the signal dispositions
Python changed (SIGPIPE, SIGXFSZ), and execs the command found on PATH as a shell would.
An exec failure travels back on a close-on-exec pipe, so the parent can exit 127 or 126.
The child's stderr is km's stderr, inherited untouched. POSIX only: without `fork`, km runs
the portable relay (`km/proxy/threaded.py`), which starts the server with `subprocess`.
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum, ~6 ms of start-up
import os
import sys

from km.errors import CommandNotExecutable, CommandNotFound

PR_SET_PDEATHSIG = 1
# Dispositions the child must start with: Python ignores SIGPIPE and SIGXFSZ, and km handles
# SIGHUP, SIGINT and SIGTERM itself; exec keeps "ignored" as it is, so reset them first.
_RESET_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM)


class Child:
    """A running MCP server: its pid (also its process group id) and our ends of its pipes."""

    __slots__ = ("pid", "stdin_fd", "stdout_fd")

    def __init__(self, pid: int, stdin_fd: int, stdout_fd: int) -> None:
        self.pid = pid
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd


def _pdeathsig_setter() -> object | None:
    """libc's prctl on Linux, else None. ctypes is imported only where it is used."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _exec_in_child(
    argv: list[str], stdin_r: int, stdout_w: int, err_w: int, parent: int, prctl: object | None
) -> None:
    """Runs in the forked child; never returns."""
    code = 127
    try:
        for signum in _RESET_SIGNALS:
            _signal.signal(signum, _signal.SIG_DFL)
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, _signal.SIGTERM, 0, 0, 0)  # type: ignore[operator]
            if os.getppid() != parent:  # km died before prctl took effect
                os._exit(1)
        os.dup2(stdin_r, 0)
        os.dup2(stdout_w, 1)
        os.execvp(argv[0], argv)
    except BaseException as exc:
        number = getattr(exc, "errno", None) or 0
        try:
            os.write(
                err_w, f"{number}:{exc.strerror if isinstance(exc, OSError) else exc}".encode()
            )
        finally:
            os._exit(code)
    os._exit(code)


def spawn(argv: list[str]) -> Child:
    """Start `argv`. Raises CommandNotFound (exit 127) or CommandNotExecutable (exit 126)."""
    if not argv:
        raise CommandNotFound("")
    stdin_r, stdin_w = os.pipe()  # os.pipe fds are close-on-exec (PEP 446)
    stdout_r, stdout_w = os.pipe()
    err_r, err_w = os.pipe()
    prctl = _pdeathsig_setter()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child until exec
        _exec_in_child(argv, stdin_r, stdout_w, err_w, parent, prctl)
    os.close(stdin_r)
    os.close(stdout_w)
    os.close(err_w)
    report = b""
    while True:
        piece = os.read(err_r, 4096)
        if not piece:
            break
        report += piece
    os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        os.close(stdin_w)
        os.close(stdout_r)
        raise _exec_error(argv[0], report.decode("utf-8", "replace"))
    return Child(pid, stdin_w, stdout_r)


def _exec_error(command: str, report: str) -> Exception:
    import errno

    number_text, _, reason = report.partition(":")
    number = int(number_text) if number_text.isdigit() else 0
    if number in (errno.ENOENT, errno.ENOTDIR) or (number == 0 and not reason):
        return CommandNotFound(command)
    return CommandNotExecutable(command, reason or os.strerror(number))
