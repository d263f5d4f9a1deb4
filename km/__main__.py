"""Entry point of the `km` console script and of `python -m km`."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from km.cli import main as cli_main

    code = cli_main(sys.argv[1:])
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    # Leave without interpreter tear-down: threads blocked on pipes (a client that keeps
    # km's stdin open) must not hold the exit up, and the exit status must be the server's.
    os._exit(code)


if __name__ == "__main__":
    main()
