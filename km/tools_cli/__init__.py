"""`km tools ...`: the CLI shell over the insight core's tool analyses.

`run_tools` dispatches on the first word; `scan` (km/tools_cli/scan.py) vets a tool list read
from a file or stdin, with no server running; `approve` (approve.py) pins the current
definitions; anything else is the inventory view (inventory.py, views.py). Each subcommand
lives in its own module and is imported only when it runs (`km tools scan` in a CI loop must
start fast)."""

from __future__ import annotations

from km.settings import Settings

SUBCOMMANDS = ("scan", "approve")  # any other first word is a SERVER for the inventory view


def run_tools(args: list[str], settings: Settings) -> int:
    """Run `km tools <subcommand> ...`; the exit code."""
    if args and args[0] == "scan":
        from km.tools_cli.scan import run_scan

        return run_scan(args[1:], settings)
    if args and args[0] == "approve":
        from km.tools_cli.approve import run_approve

        return run_approve(args[1:], settings)
    if args and args[0] in ("-h", "--help"):
        import sys

        sys.stdout.write(USAGE)
        return 0
    # `km tools [SERVER] [--json] [--spool PATH]`: the captured inventory.
    from km.tools_cli.inventory import run_inventory

    return run_inventory(args, settings)


USAGE = """\
usage: km tools [SERVER] [--json] [--spool PATH]
       km tools approve [SERVER [TOOL]] [--spool PATH]
       km tools scan [FILE|-] [--json] [--fail-on SEVERITY]

  (none)   each server's tools: context tokens, definition history, drift and findings
  approve  pin the current definitions as reviewed; a later change is flagged until approved
  scan     poisoning findings over a tools/list result, from a file or stdin
"""
