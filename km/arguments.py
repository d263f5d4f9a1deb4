"""argparse for km's own commands, made library-safe: a bad command line raises `UsageError`
and `--help` raises `ParserExit`, so nothing below the CLI ever calls `sys.exit`."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from km.errors import UsageError


class ParserExit(Exception):
    """argparse wanted to exit (after `--help`): the command returns `status`."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise ParserExit(status)
