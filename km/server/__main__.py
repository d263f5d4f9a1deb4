"""`python -m km.server ...`: the same as `km serve ...` (useful before the CLI wires it in)."""

from __future__ import annotations

import os
import sys

from km.errors import KmError
from km.server.cli import run_serve
from km.settings import Settings


def main() -> int:
    try:
        return run_serve(sys.argv[1:], Settings.load(os.environ))
    except KmError as exc:
        sys.stderr.write(f"km serve: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
