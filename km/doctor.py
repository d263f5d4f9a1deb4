"""`km doctor [--json]`: is km installed, capturing, delivering and in front of the clients?

Each check gives ok, warn or fail, a one-line detail and, for a problem, the command that fixes
it. The exit status is 1 when any check fails (warnings alone exit 0). The API key is never
shown, only its masked prefix.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import quote

from km.arguments import CommandParser, ParserExit
from km.errors import KmError
from km.settings import Settings

HTTP_TIMEOUT_S = 3.0  # a healthy API answers /health in milliseconds; don't hang the doctor
SPOOL_BUSY_TIMEOUT_MS = 2000  # readers only wait for a WAL recovery
KEY_CHECK_PATH = "/api/v1/sessions?limit=1"  # any authenticated read-only endpoint

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def run_doctor(args: list[str], settings: Settings, environ: Mapping[str, str]) -> int:
    parser = CommandParser(prog="km doctor", description="Check km's installation and setup.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    try:
        options = parser.parse_args(args)
    except ParserExit as done:
        return done.status
    checks = run_checks(settings, environ)
    failed = any(check.status == "fail" for check in checks)
    if options.json:
        import json

        body = {"ok": not failed, "checks": [asdict(check) for check in checks]}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        sys.stdout.write(render(checks))
    return 1 if failed else 0


def run_checks(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    checks = [check_path(environ)]
    try:
        settings.load_config_file()
    except KmError as exc:
        checks.append(Check("config", "fail", str(exc), "km config path  (then fix or remove it)"))
    checks.append(check_spool(settings.resolve_spool_path()))
    checks += check_api(settings.api_url, settings.api_key)
    checks += check_clients(environ)
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.status:<5} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':<5} {'':<{width}}  fix: {check.fix}")
    failures = sum(check.status == "fail" for check in checks)
    warnings = sum(check.status == "warn" for check in checks)
    lines.append(f"{failures} failed, {warnings} warnings, {len(checks)} checks")
    return "\n".join(lines) + "\n"


def check_path(environ: Mapping[str, str]) -> Check:
    from km.setup.apply import km_executable

    running = km_executable()
    found = shutil.which("km", path=environ.get("PATH", ""))
    if found is None:
        directory = os.path.dirname(running) if os.path.isabs(running) else "km's directory"
        return Check(
            "km on PATH", "warn", f"not on PATH (this km: {running})", f"add {directory} to PATH"
        )
    if os.path.realpath(found) != os.path.realpath(running) and os.path.isabs(running):
        return Check("km on PATH", "ok", f"{found} (this km: {running})")
    return Check("km on PATH", "ok", found)


def check_spool(path: str) -> Check:
    from km.spool.schema import SCHEMA_VERSION

    name = "spool"
    if not os.path.exists(path):
        parent = _existing_ancestor(os.path.dirname(os.path.abspath(path)))
        if os.access(parent, os.W_OK):
            return Check(name, "ok", f"{path} does not exist yet (created at the first capture)")
        return Check(name, "fail", f"cannot create {path}: {parent} is not writable",
                     f"chmod u+w {parent}  (or set KM_SPOOL to a writable path)")  # fmt: skip
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(os.path.dirname(path), os.W_OK):
        return Check(name, "fail", f"{path} is not writable", f"chmod u+rw {path}")
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    moved = f"mv {path} {path}.bad  (km starts a new spool)"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {SPOOL_BUSY_TIMEOUT_MS:d}")
            integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check(name, "fail", f"{path} cannot be read: {exc}", moved)
    if integrity != "ok":
        return Check(name, "fail", f"{path} is damaged: {integrity}", moved)
    if version > SCHEMA_VERSION:
        return Check(name, "fail", f"{path} has schema {version}, newer than this km's "
                     f"{SCHEMA_VERSION}", "upgrade km")  # fmt: skip
    size = os.path.getsize(path)
    detail = f"{path}: healthy, schema {version}, {size} bytes"
    if version < SCHEMA_VERSION:
        detail += f" (upgraded to {SCHEMA_VERSION} at the next capture)"
    return Check(name, "ok", detail)


def check_api(url: str | None, key: str | None) -> list[Check]:
    from km.uplink.secret import display_url, mask

    if not url:
        return [Check("API", "warn", "not configured: captures stay on this machine",
                      "km login --url URL")]  # fmt: skip
    shown = display_url(url)
    base = url.rstrip("/")
    status, reason = _http_get(base + "/health", None)
    if status != 200:
        problem = f"HTTP {status}" if status else reason
        return [Check("API", "fail", f"{shown} is not reachable: {problem}",
                      "start the API, or point km at it: km login --url URL")]  # fmt: skip
    checks = [Check("API", "ok", f"{shown} is up")]
    if not key:
        checks.append(Check("API key", "fail", "no API key configured", "km login"))
        return checks
    status, reason = _http_get(base + KEY_CHECK_PATH, key)
    if status == 200:
        checks.append(Check("API key", "ok", f"{mask(key)} accepted"))
    elif status in (401, 403):
        checks.append(Check("API key", "fail", f"{mask(key)} rejected (HTTP {status})",
                            "km login  (with a valid key)"))  # fmt: skip
    else:
        problem = f"HTTP {status}" if status else reason
        checks.append(Check("API key", "warn", f"could not check {mask(key)}: {problem}"))
    return checks


def check_clients(environ: Mapping[str, str]) -> list[Check]:
    from km.setup.clients import CLIENTS, DISPLAY_NAMES, config_locations

    checks = []
    for client in CLIENTS:
        locations = config_locations(client, environ, sys.platform, os.getcwd())
        paths = [loc.path for loc in locations if os.path.isfile(loc.path)]
        if paths:
            checks.append(_client_check(client, DISPLAY_NAMES[client], paths))
    if not checks:
        return [Check("clients", "warn", "no MCP client config found",
                      "km setup --config PATH")]  # fmt: skip
    return checks


def _client_check(client: str, label: str, paths: list[str]) -> Check:
    from km.installation import is_versioned_km
    from km.setup.jsonc import JsoncError
    from km.setup.jsonc_edit import find_servers, server_command

    wrapped: list[str] = []
    unwrapped: list[str] = []
    missing_km: set[str] = set()
    versioned: set[str] = set()
    for path in paths:
        try:
            with open(path, "rb") as f:
                servers = find_servers(f.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError, JsoncError) as exc:
            return Check(label, "warn", f"{path} cannot be read: {exc}", f"fix {path}")
        for server in servers:
            if server.kind in ("wrapped", "km"):
                wrapped.append(server.name)
                command = server_command(server)
                if command and os.path.isabs(command) and not os.path.exists(command):
                    missing_km.add(command)
                elif command and is_versioned_km(command):
                    versioned.add(command)
            elif server.kind == "stdio":
                unwrapped.append(server.name)
    where = ", ".join(paths)
    if missing_km:
        gone = ", ".join(sorted(missing_km))
        if any(is_versioned_km(command) for command in missing_km):  # an upgrade removed it
            detail = f"wrapped with {gone}, a versioned path an upgrade removed ({where})"
            return Check(label, "fail", detail + "; km setup repairs it", f"km setup {client}")
        return Check(label, "fail", f"wrapped with {gone}, which no longer exists ({where})",
                     f"km setup --undo {client} && km setup {client}")  # fmt: skip
    if versioned:
        shown = ", ".join(sorted(versioned))
        detail = f"wrapped with the versioned path {shown}, which the next upgrade removes"
        fix = f"km setup {client}"
        return Check(label, "warn", f"{detail} ({where}); km setup repairs it", fix)
    if unwrapped:
        return Check(label, "warn", f"not wrapped: {', '.join(unwrapped)} ({where})",
                     f"km setup {client}")  # fmt: skip
    if not wrapped:
        return Check(label, "ok", f"no stdio servers ({where})")
    return Check(label, "ok", f"all {len(wrapped)} stdio servers wrapped ({where})")


def _existing_ancestor(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _http_get(url: str, key: str | None) -> tuple[int, str]:
    """The HTTP status of a GET (0 and the reason when there is no answer). The key goes in an
    unredirected header: a redirect never carries it to another host."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method="GET")
    if key:
        request.add_unredirected_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code), ""
    except urllib.error.URLError as exc:
        return 0, str(exc.reason)
    except (OSError, ValueError) as exc:
        return 0, str(exc) or type(exc).__name__
