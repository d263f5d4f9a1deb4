"""Entry point of the `km` console script and of `python -m km`."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from km.cli import main as cli_main

    code = cli_main(sys.argv[1:])
    # os._exit skips the interpreter's flush: flush here, or a command's output to a pipe
    # (`km status --json | jq`, `km --version | cat`) is lost whenever stdout is buffered,
    # which it is unless PYTHONUNBUFFERED is set (and a frozen km ignores that variable).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    # Leave without interpreter tear-down: threads blocked on pipes (a client that keeps
    # km's stdin open) must not hold the exit up, and the exit status must be the server's.
    os._exit(code)


if __name__ == "__main__":
    main()
