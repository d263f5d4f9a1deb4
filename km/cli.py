"""The command line. `km [km options] [--] <server command> [args...]` runs the proxy; a few
words (`status`, ...) are km's own commands. The CLI builds the one `Settings` object and turns
typed errors into exit codes; nothing below it calls `sys.exit` or reads `os.environ`.

Parsing for the proxy is by hand: argparse costs start-up time on every MCP server launch, and
km's options must stop at the first word that is not one of them (the server's own `--help`
or `-v` belong to the server).
"""

from __future__ import annotations

import os
import sys

from km import __version__
from km.errors import CommandNotFound, KmError, UsageError
from km.settings import Settings

USAGE = """\
usage: km [km options] [--] <mcp server command> [args...]
       km status [--json] [--spool PATH]
       km serve [--host H] [--port P] [--database-url URL] | km serve keys create|list|revoke
       km tools scan [FILE|-] [--json] [--fail-on SEVERITY]
       km tail [FILTER] | km sessions [FILTER] | km show SESSION [FILTER]

Runs the MCP server command with every JSON-RPC message in both directions captured into a
local spool, unchanged and unslowed. Put `km` in front of the command in your MCP client's
configuration, e.g. `km npx -y @modelcontextprotocol/server-github`.

km options (each also settable by environment variable):
  --name NAME          server name shown in km status (KM_NAME; default: from the command)
  --spool PATH         spool database (KM_SPOOL; default: user data dir/spool.db)
  --no-capture         forward only, capture nothing (KM_CAPTURE=0)
  --max-payload SIZE   store at most SIZE bytes of each message (KM_MAX_PAYLOAD; default 64k)
  KM_MAX_DEFINITIONS=SIZE  but keep initialize and list results (tool definitions) whole up
                       to SIZE (default 16M)
  --spool-max SIZE     evict the oldest events past SIZE (KM_SPOOL_MAX_BYTES; default 1G)
  --grace SECONDS      wait after closing the server's stdin before SIGTERM (KM_GRACE; 2)
  KM_REDACT=metadata   store no payloads at all (default `on`: secrets and PII redacted)
  KM_REDACT_KEYS=a,b   more key names whose values are always redacted
  -V, --version        print km's version
  -h, --help           print this help

commands:
  status               what has been captured: events by state, server, session; live km runs
  sync                 deliver every spooled event to the Kilometers API now (progress bar)
  login [--url URL]    store the API URL and key (read from stdin or a hidden prompt)
  config [show|set K V|unset K|path]   km's config file (the key is always masked)
  serve                run the Kilometers API locally (embedded SQLite, or PostgreSQL); keys
  setup [CLIENT|all] [--undo] [--dry-run] [--config PATH]
                       put km in front of every stdio server of Claude Desktop, Claude Code,
                       Cursor, VS Code or Windsurf (--undo takes it out again, exactly)
  doctor [--json]      check km's PATH, spool, API and key, and which clients are wrapped
  update [--check]     update km to the newest release (or print the command for pipx, ...)
  tools scan [FILE|-]  poisoning findings over a tools/list result (file or stdin, no server
                       needed); exit 1 at --fail-on SEVERITY (default high), --json for CI
  tail [FILTER] [-n N] [--since T] [--session ID] [--json]
                       follow captured traffic live, one line per exchange
  sessions [FILTER] [--api] [--json]   sessions with calls, errors, p50/p95, tokens, findings
  show SESSION [FILTER] [--full] [--api] [--json]   one session's timeline (payloads: --full)
                       FILTER: tool:git_* -status:ok latency>500ms "text" ... (docs/filters.md)
  export [FILTER] [--format jsonl|otlp|sarif] [-o FILE] [--otlp-endpoint URL]
                       the events FILTER selects as lossless JSONL, OpenTelemetry traces and
                       metrics (MCP conventions; OTLP JSON or OTLP/HTTP), or findings as SARIF
  import FILE [--api] [--partial]   a JSONL export back into the spool (or to the API)
  replay SESSION [--ignore PATH] [--] <server command>
                       send a session's client messages to a fresh server, diff the answers
"""

# Proxy options that take a value: flag -> settings field.
_VALUE_FLAGS = {
    "--name": "server_name",
    "--spool": "spool_path",
    "--max-payload": "payload_cap",
    "--spool-max": "spool_max_bytes",
    "--grace": "grace_s",
}
COMMANDS = (
    "status",
    "serve",
    "sync",
    "login",
    "config",
    "setup",
    "doctor",
    "tools",
    "tail",
    "sessions",
    "show",
    "update",
    "export",
    "import",
    "replay",
)


def _err(message: str) -> None:
    os.write(2, f"km: {message}\n".encode("utf-8", "replace"))


def parse_proxy_args(args: list[str], settings: Settings) -> list[str]:
    """Apply km's leading options to `settings`; return the server command and its arguments."""
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        name, eq, inline = word.partition("=")
        if name in _VALUE_FLAGS:
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise UsageError(f"{name} needs a value (see km --help)")
            settings.set(_VALUE_FLAGS[name], value, name)
        elif word == "--no-capture":
            settings.capture = False
        else:
            raise UsageError(
                f"unknown km option {word!r}; put `--` before the server command if it is the "
                "server's (see km --help)"
            )
        i += 1
    command = args[i:]
    if not command:
        raise UsageError("no MCP server command given (usage: km [options] <command> [args...])")
    return command


def main(argv: list[str]) -> int:
    try:
        settings = Settings.load(os.environ)
        if not argv:
            sys.stderr.write(USAGE)
            return 2
        if argv[0] in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if argv[0] in ("-V", "--version"):
            sys.stdout.write(f"km {__version__}\n")
            return 0
        if argv[0] in COMMANDS:
            from km.commands import run_command

            return run_command(argv[0], argv[1:], settings)
        command = parse_proxy_args(argv, settings)
        from km.proxy.run import run_proxy

        try:
            return run_proxy(settings, command)
        except CommandNotFound:
            if command == argv or command[0] in COMMANDS:  # a mistyped or misplaced km command
                from km.suggest import not_a_command

                hint = not_a_command(command[0], COMMANDS, first=command == argv)
                raise CommandNotFound(command[0], hint) from None
            raise
    except KmError as exc:
        _err(str(exc))
        return exc.exit_code
    except OSError as exc:  # the environment failed where no typed error says how: one line
        _err(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        return 130
