"""Typed errors. Library code raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class KmError(Exception):
    """Base of every error km reports to a user. The message says what to do about it."""

    exit_code = 1


class UsageError(KmError):
    """The command line could not be understood."""

    exit_code = 2


class CommandNotFound(KmError):
    """The MCP server command does not exist on PATH (a shell would exit 127)."""

    exit_code = 127

    def __init__(self, command: str, hint: str = "") -> None:
        super().__init__(f"cannot start `{command}`: command not found in PATH{hint}")
        self.command = command


class CommandNotExecutable(KmError):
    """The MCP server command exists but cannot be executed (a shell would exit 126)."""

    exit_code = 126

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"cannot start `{command}`: {reason}")
        self.command = command
        self.reason = reason


class SpoolError(KmError):
    """The spool cannot be opened or written. Capture stops; forwarding never does."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"spool {path}: {reason}")
        self.path = path
        self.reason = reason


class InputError(KmError):
    """An input file or stream km was asked to read is unreadable or not what it should be."""

    exit_code = 2

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
