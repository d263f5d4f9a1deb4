"""`km tools approve [SERVER [TOOL]] [--spool PATH]`: pin the current definitions (of every
server, one server, or one tool of it) as reviewed. A later change to a pinned definition is
flagged by `km tools` and `km status` until it is approved again. Local pins live in the spool
(table `pins`); the API keeps its own per account."""

from __future__ import annotations

import sys
import time

from km.arguments import CommandParser, ParserExit
from km.errors import UsageError
from km.settings import Settings


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="km tools approve",
        description="Approve (pin) the current tool definitions; later changes are flagged.",
    )
    parser.add_argument("server", nargs="?", help="only this server (its km name)")
    parser.add_argument("tool", nargs="?", help="only this tool of SERVER")
    parser.add_argument("--spool", metavar="PATH", help="spool database (KM_SPOOL)")
    return parser


def run_approve(args: list[str], settings: Settings) -> int:
    try:
        options = _parser().parse_args(args)
    except ParserExit as done:
        return done.status
    if options.spool:
        settings.set("spool_path", options.spool, "--spool")
    import os

    from km.spool.store import SpoolStore

    path = settings.resolve_spool_path()
    if not os.path.exists(path):
        raise UsageError(f"no spool at {path}: nothing captured to approve yet")
    store = SpoolStore.open(path, settings.spool_max_bytes)
    try:
        pinned = store.approve(time.time_ns(), options.server, options.tool)
    finally:
        store.close()
    scope = "every server"
    if options.server:
        scope = f"server {options.server!r}"
        if options.tool:
            scope = f"tool {options.tool!r} of {scope}"
    if not pinned:
        raise UsageError(
            f"km tools approve: no captured tool definitions for {scope} (`km tools` lists them)"
        )
    sys.stdout.write(f"approved {pinned} definition{'s' if pinned != 1 else ''} of {scope}\n")
    return 0
