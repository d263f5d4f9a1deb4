"""`km sync`, `km login` and `km config`: the uplink's commands.

    km sync [--spool PATH] [--quiet]     deliver everything now, with a progress bar on stderr
    km login [--url URL]                 the key comes from stdin or a hidden prompt, never argv
    km config [show]                     settings in effect (the key masked)
    km config set KEY VALUE              write KEY to the config file (not api_key: km login)
    km config unset KEY                  remove KEY from the config file
    km config path                       print the config file's path

Each entry takes the words after its command and the CLI's `Settings`, and returns the exit
code; errors become one `km: ...` line on stderr. Stdout carries only what a command is asked
to print (`km config show`, `km config path`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import IO, Any, TypeVar

from km.arguments import CommandParser, ParserExit
from km.errors import KmError, UsageError
from km.settings import ENV_PREFIX, ENV_VARS, Settings
from km.uplink.errors import KeyRejected, NotConfigured
from km.uplink.secret import display_url, mask

T = TypeVar("T")

LOGIN_TIMEOUT_S = 15.0  # checking a key against the API
EXIT_REMAINING = 1  # km sync ended with deliverable events left


def _err(message: str) -> None:
    sys.stderr.write(f"km: {message}\n")
    sys.stderr.flush()


def _run(main: Coroutine[Any, Any, T]) -> T:
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def _entry(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except ParserExit as done:
        return done.status
    except KmError as exc:
        _err(str(exc))
        return exc.exit_code


# -- km sync ----------------------------------------------------------------------------------


def run_sync(args: list[str], settings: Settings) -> int:
    """`km sync`: deliver every deliverable event now. 0 when none is left."""
    return _entry(lambda: _sync(args, settings))


def _sync(args: list[str], settings: Settings) -> int:
    parser = CommandParser(prog="km sync", description="Deliver captured events to the API now.")
    parser.add_argument("--spool", metavar="PATH", help="spool database (KM_SPOOL)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    options = parser.parse_args(args)
    if options.spool:
        settings.set("spool_path", options.spool, "--spool")
    settings.load_config_file()
    if not settings.api_url:
        raise NotConfigured("URL")
    if not settings.api_key:
        raise NotConfigured("key")
    path = settings.resolve_spool_path()
    if not os.path.exists(path):
        _err(f"nothing to send: no spool at {path} yet")
        return 0
    from km.uplink.run import DrainResult, Uplink

    uplink = Uplink(settings, path)
    url = display_url(settings.api_url)
    started = time.monotonic()
    if options.quiet or not sys.stderr.isatty():
        result: DrainResult = _run(uplink.run_until_drained())
    else:
        result = _with_progress_bar(uplink, url)
    elapsed = time.monotonic() - started
    if result.sent or result.quarantined:
        parts = [f"sent {result.sent} events to {url} in {elapsed:.1f} s"]
    else:
        parts = [_nothing_left(path)]
    if result.duplicates:
        parts.append(f"{result.duplicates} of them already there")
    if result.quarantined:
        parts.append(f"{result.quarantined} quarantined (reasons: km status)")
    _err("; ".join(parts))
    remaining = result.remaining
    if remaining.leased:
        _err(f"{remaining.leased} events are being sent by other km processes")
    if remaining.deliverable:
        _err(f"{remaining.deliverable} events still wait: run km sync again")
        return EXIT_REMAINING
    return 0


def _nothing_left(path: str) -> str:
    """What `km sync` says when it had nothing to send: the background uplink (or an earlier
    sync) already delivered everything, which `km status` counts as sent."""
    from km.spool.status import read_status

    try:
        delivered = int(read_status(path)["delivery"]["sent"])
    except (KmError, KeyError, TypeError, ValueError):
        delivered = 0
    if delivered:
        return (
            f"nothing left to send: {delivered} events were already delivered by the "
            "background uplink (km status shows them as sent)"
        )
    return "nothing to send: no captured events are waiting"


def _with_progress_bar(uplink: Any, url: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from km.uplink.run import Progress as Step

    console = Console(stderr=True)
    with Progress(
        TextColumn(f"sending to {url}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("sync", total=None, note="")

        def show(step: Step) -> None:
            note = f"{step.quarantined} quarantined" if step.quarantined else ""
            bar.update(task, completed=step.sent + step.quarantined, total=step.total, note=note)

        return _run(uplink.run_until_drained(show))


# -- km login ---------------------------------------------------------------------------------


def run_login(args: list[str], settings: Settings, *, stdin: IO[str] | None = None) -> int:
    """`km login [--url URL]`: read a key (stdin, or a hidden prompt on a terminal), check it
    against the API when it can be reached, and save URL and key in the config file."""
    return _entry(lambda: _login(args, settings, stdin or sys.stdin))


def _login(args: list[str], settings: Settings, stdin: IO[str]) -> int:
    parser = CommandParser(
        prog="km login",
        description="Save the API URL and key in the config file. The key is read from stdin "
        "or asked for without echo; it is never taken from the command line.",
    )
    parser.add_argument("--url", metavar="URL", help="the Kilometers API, e.g. https://...")
    parser.add_argument("--key", "--api-key", dest="key", help=argparse.SUPPRESS)
    options = parser.parse_args(args)
    if options.key is not None:
        raise UsageError(
            "km login takes no --key: the key is read from stdin or a hidden prompt, so it "
            'never shows in process listings or shell history (e.g. `echo "$KEY" | km login`)'
        )
    settings.load_config_file()
    url = options.url or settings.api_url
    if not url:
        raise UsageError("no API URL: km login --url https://...")
    _check_url(url)
    key = _read_key(stdin)
    verdict = _run(_verify(url, key))
    shown = display_url(url)
    if verdict[0] == "rejected":
        raise KeyRejected(shown, verdict[1], verdict[2])
    path = settings.resolve_config_path()
    from km.uplink.config_file import update_config

    update_config(path, {"api_url": url, "api_key": key})
    if verdict[0] == "ok":
        _err(f"key {mask(key)} accepted by {shown}; saved to {path}")
    else:
        _err(f"could not reach {shown} ({verdict[2]}); key {mask(key)} saved to {path} unchecked")
    if "api_key" in settings._explicit or "api_url" in settings._explicit:
        _err(
            f"note: {ENV_VARS['api_key']} or {ENV_VARS['api_url']} (or a flag) is set and "
            "takes precedence over the config file"
        )
    return 0


def _check_url(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"API URL {display_url(url)!r}: expected http(s)://host[:port]")


def _read_key(stdin: IO[str]) -> str:
    if stdin.isatty():
        import getpass

        key = getpass.getpass("Kilometers API key (input hidden): ")
    else:
        key = stdin.readline()
    key = key.strip()
    if not key:
        raise UsageError("no API key given (paste it at the prompt, or pipe it on stdin)")
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise UsageError("the API key contains spaces or control characters")
    return key


async def _verify(url: str, key: str) -> tuple[str, int, str]:
    """("ok", 200, ""), ("rejected", status, reason) or ("unreachable", status, reason)."""
    from km.uplink.client import ApiClient, TransportError
    from km.uplink.outcome import Pause as PauseOutcome
    from km.uplink.outcome import decide
    from km.uplink.secret import Secret

    async with ApiClient(url, Secret(key), timeout_s=LOGIN_TIMEOUT_S) as client:
        try:
            reply = await client.check_key()
        except TransportError as exc:
            return ("unreachable", 0, exc.description)
        if reply.status == 200:
            return ("ok", 200, "")
        verdict = decide(reply.status, reply.headers, reply.body, [], time.time())
        reason = client.scrub(getattr(verdict, "reason", f"HTTP {reply.status}"))
        if isinstance(verdict, PauseOutcome):
            return ("rejected", reply.status, reason)
        return ("unreachable", reply.status, reason)


# -- km config --------------------------------------------------------------------------------

SECRET_KEYS = frozenset({"api_key"})


def config_keys() -> dict[str, str]:
    """Config file key -> settings field, as `Settings.load_config_file` reads them."""
    return {var.removeprefix(ENV_PREFIX).lower(): name for name, var in ENV_VARS.items()}


def run_config(args: list[str], settings: Settings, *, stdout: IO[str] | None = None) -> int:
    """`km config [show | set KEY VALUE | unset KEY | path]`."""
    return _entry(lambda: _config(args, settings, stdout or sys.stdout))


def _config(args: list[str], settings: Settings, out: IO[str]) -> int:
    parser = CommandParser(prog="km config", description="Show or change km's config file.")
    words = parser.add_subparsers(dest="verb")
    words.add_parser("show", help="settings in effect, the key masked")
    setter = words.add_parser("set", help="write a key to the config file")
    setter.add_argument("key")
    setter.add_argument("value")
    unsetter = words.add_parser("unset", help="remove a key from the config file")
    unsetter.add_argument("key")
    words.add_parser("path", help="print the config file's path")
    options = parser.parse_args(args)
    path = settings.resolve_config_path()
    verb = options.verb or "show"
    if verb == "path":
        out.write(path + "\n")
        return 0
    keys = config_keys()
    from km.uplink.config_file import parse as parse_toml
    from km.uplink.config_file import read_text, update_config

    if verb == "show":
        in_file = parse_toml(read_text(path), path)
        settings.load_config_file()
        out.write(f"# {path}{'' if os.path.exists(path) else ' (does not exist yet)'}\n")
        for key, field in keys.items():
            value = getattr(settings, field)
            if value is None:
                continue
            if key in in_file and field not in settings._explicit:
                source = "config file"
            elif field in settings._explicit:
                source = f"{ENV_VARS[field]} or a flag"
            else:
                source = "default"
            shown = mask(str(value)) if key in SECRET_KEYS else _shown(key, value)
            out.write(f"{key} = {shown}  # {source}\n")
        return 0
    key = options.key
    if key not in keys:
        raise UsageError(f"km config: unknown key {key!r} (known: {', '.join(sorted(keys))})")
    if verb == "set":
        if key in SECRET_KEYS:
            raise UsageError(
                "km config set api_key: use `km login` (a key on the command line shows in "
                "process listings and shell history)"
            )
        Settings().set(keys[key], options.value, f"km config set {key}")  # validates it
        update_config(path, {key: options.value})
        _err(f"{key} set in {path}")
        return 0
    update_config(path, {key: None})
    _err(f"{key} removed from {path}")
    return 0


def _shown(key: str, value: object) -> str:
    if key.endswith("_url") and isinstance(value, str):
        return display_url(value)  # no user or password (a database URL may hold one)
    return str(value)
