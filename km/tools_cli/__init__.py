"""`km tools ...`: the CLI shell over the insight core's tool analyses.

`run_tools` dispatches on the first word; `scan` (km/tools_cli/scan.py) vets a tool list read
from a file or stdin, with no server running. Each subcommand lives in its own module and is
imported only when it runs (`km tools scan` in a CI loop must start fast)."""

from __future__ import annotations

from km.errors import UsageError
from km.settings import Settings

SUBCOMMANDS = ("scan",)


def run_tools(args: list[str], settings: Settings) -> int:
    """Run `km tools <subcommand> ...`; the exit code."""
    if args and args[0] == "scan":
        from km.tools_cli.scan import run_scan

        return run_scan(args[1:], settings)
    if args and args[0] in ("-h", "--help"):
        import sys

        sys.stdout.write(
            "usage: km tools scan [FILE|-] [--json] [--fail-on SEVERITY]\n\n"
            "  scan    poisoning findings over a tools/list result, from a file or stdin\n"
        )
        return 0
    word = args[0] if args else ""
    raise UsageError(
        f"km tools: unknown subcommand {word!r} (usage: km tools scan [FILE|-] [--json] "
        "[--fail-on SEVERITY])"
        if word
        else "km tools: a subcommand is needed (usage: km tools scan [FILE|-] [--json] "
        "[--fail-on SEVERITY])"
    )
