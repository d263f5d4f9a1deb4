"""km's own commands (`km status`, ...), parsed with argparse: they are not on the proxy's
start-up path, so the convenience costs nothing there."""

from __future__ import annotations

from km.arguments import CommandParser, ParserExit
from km.errors import UsageError
from km.settings import Settings


def _status_parser() -> CommandParser:
    parser = CommandParser(prog="km status", description="Show what km has captured.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--spool", metavar="PATH", help="spool database to read (KM_SPOOL)")
    return parser


def run_command(name: str, args: list[str], settings: Settings) -> int:
    if name == "tools" and args[:1] == ["scan"]:  # reads no config: a fast, pure CI check
        from km.tools_cli import run_tools

        return run_tools(args, settings)
    if name not in ("login", "config", "setup", "doctor", "update"):  # work with a broken config
        settings.load_config_file()
    if name in ("sync", "login", "config"):
        from km.uplink import cli as uplink_cli

        run = {
            "sync": uplink_cli.run_sync,
            "login": uplink_cli.run_login,
            "config": uplink_cli.run_config,
        }[name]
        return run(args, settings)
    if name == "setup":
        import os

        from km.setup.cli import run_setup

        return run_setup(args, settings, os.environ)
    if name == "doctor":
        import os

        from km.doctor import run_doctor

        return run_doctor(args, settings, os.environ)
    if name == "update":
        import os

        from km.update.cli import run_update

        return run_update(args, settings, os.environ)
    if name in ("tail", "sessions", "show"):
        from km.views import cli as views_cli

        view = {
            "tail": views_cli.run_tail,
            "sessions": views_cli.run_sessions,
            "show": views_cli.run_show,
        }[name]
        return view(args, settings)
    if name in ("export", "import"):
        from km.export import cli as export_cli

        run = export_cli.run_export if name == "export" else export_cli.run_import
        return run(args, settings)
    if name == "replay":
        from km.replay.cli import run_replay

        return run_replay(args, settings)
    if name == "serve":
        from km.server.cli import run_serve

        return run_serve(args, settings)
    if name == "tools":
        from km.tools_cli import run_tools

        return run_tools(args, settings)
    if name == "status":
        try:
            options = _status_parser().parse_args(args)
        except ParserExit as done:
            return done.status
        if options.spool:
            settings.set("spool_path", options.spool, "--spool")
        from km.status_cmd import run_status

        return run_status(settings, as_json=bool(options.json))
    raise UsageError(f"unknown command {name!r}")
