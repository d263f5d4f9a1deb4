"""`km update [--check]`.

    km update           install.sh's or install.ps1's km: switch to the newest release
                        (verified against SHA256SUMS) the way that installer does; pipx, uv,
                        Homebrew, Scoop: print the one command that upgrades that install
    km update --check   only say whether a newer version exists

Exit status: 0 when km is up to date or was updated (or, for another install method, after
printing its command); with --check, 100 when a newer version exists (as `dnf check-update`);
1 when the release cannot be read or the update fails (the installed km is then unchanged).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping

from km import __version__
from km.arguments import CommandParser, ParserExit
from km.errors import KmError
from km.installation import Installation, detect
from km.settings import Settings
from km.update import release, windows
from km.update.switch import Layout, UpdateError, fetch_text, install, remove_others
from km.update.winpath import UserPath, registry_user_path

EXIT_NEWER = 100  # `km update --check`: a newer version exists


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="km update",
        description="Update km to the newest release (KM_INSTALL_BASE_URL: a mirror). "
        f"With --check, exit {EXIT_NEWER} when a newer version exists, 0 when not.",
    )
    parser.add_argument(
        "--check", action="store_true", help="only say whether a newer version exists"
    )
    return parser


def newest_release(
    environ: Mapping[str, str], system: str = sys.platform
) -> tuple[str, release.Candidate | None]:
    """The base URL and the newest archive it offers for this machine (None: no build)."""
    base = release.base_url(environ)
    here = release.platform_name(system, platform.machine())
    if here is None:
        raise UpdateError(f"no km builds for {system}/{platform.machine()}")
    try:
        sums = release.parse_sums(fetch_text(f"{base}/SHA256SUMS"))
    except release.ReleaseError as exc:
        raise UpdateError(f"{base}/SHA256SUMS: {exc}") from None
    return base, release.newest(sums, here)


def run_update(args: list[str], settings: Settings, environ: Mapping[str, str]) -> int:
    del settings  # the release location is install.sh's KM_INSTALL_BASE_URL, not a km setting
    try:
        options = _parser().parse_args(args)
    except ParserExit as done:
        return done.status
    return update(detect(environ), environ, check=options.check)


def update(
    installation: Installation,
    environ: Mapping[str, str],
    *,
    check: bool,
    user_path: UserPath | None = None,
) -> int:
    """`km update [--check]` for `installation` (`user_path`: install.ps1's user PATH, the
    registry's when None)."""
    on_windows = installation.method == "installer-windows"
    base, candidate = newest_release(environ, "win32" if on_windows else sys.platform)
    if candidate is None:
        raise UpdateError(f"the release at {base} has no km build for this machine")
    newer = release.is_newer(candidate.version, __version__)
    if check:
        if newer:
            sys.stdout.write(
                f"km {candidate.version} is available (this is km {__version__}): "
                f"{installation.upgrade_command}\n"
            )
            return EXIT_NEWER
        sys.stdout.write(f"km {__version__} is the newest (the release has {candidate.version})\n")
        return 0
    if not newer:
        sys.stdout.write(f"km {__version__} is the newest: nothing to do\n")
        if on_windows:  # the versions an earlier update could not remove while they ran
            here = windows.WindowsLayout.of(installation.executable)
            _clean_windows(here, user_path or registry_user_path())
        return 0
    if on_windows:
        return _update_windows(base, candidate, installation, user_path or registry_user_path())
    if installation.method != "installer":
        return _other_method(installation, candidate.version)
    if installation.prefix is None:
        raise UpdateError(
            f"this km ({installation.executable}) was not installed by install.sh, so km "
            f"update cannot switch it: install km {candidate.version} with install.sh"
        )
    layout = Layout(installation.prefix)
    sys.stdout.write(f"km update: downloading km {candidate.version} from {base}\n")
    sys.stdout.flush()
    try:
        installed = install(base, candidate, layout)
    except KmError as exc:
        raise UpdateError(f"{exc}; km {__version__} is unchanged") from None
    sys.stdout.write(
        f"km update: checksum verified; km {__version__} -> {candidate.version} "
        f"({installed}, linked from {layout.link})\n"
    )
    sys.stdout.flush()
    remove_others(layout, candidate.version)  # last: this km's own files go with it
    return 0


def _update_windows(
    base: str, candidate: release.Candidate, installation: Installation, user_path: UserPath
) -> int:
    layout = windows.WindowsLayout.of(installation.executable)
    sys.stdout.write(f"km update: downloading km {candidate.version} from {base}\n")
    sys.stdout.flush()
    try:
        installed = windows.install(base, candidate, layout, user_path)
    except KmError as exc:
        raise UpdateError(f"{exc}; km {__version__} is unchanged") from None
    sys.stdout.write(
        f"km update: checksum verified; km {__version__} -> {candidate.version} ({installed}, "
        "the km your user PATH names now)\n"
        "km update: open a new terminal and restart your MCP clients to use it (they keep the "
        "PATH they started with)\n"
    )
    _clean_windows(layout, user_path)
    sys.stdout.write(
        f"km update: {layout.folder(layout.running)} stays while this km runs from it (Windows "
        "does not delete a running program); the next `km update` removes it\n"
    )
    sys.stdout.flush()
    return 0


def _clean_windows(layout: windows.WindowsLayout, user_path: UserPath) -> None:
    try:
        keep = windows.to_keep(layout, user_path.read(), user_path)
    except KmError as exc:  # without the user PATH, no way to tell which version is in use
        sys.stderr.write(f"km update: old versions left in {layout.prefix}: {exc}\n")
        return
    done = windows.clean(layout, keep)
    for path in done.removed:
        sys.stdout.write(f"km update: removed {path}\n")
    for path in done.kept:
        sys.stdout.write(
            f"km update: kept {path}: a km started from it is running; the next `km update` "
            "removes it\n"
        )


def _other_method(installation: Installation, version: str) -> int:
    how = {
        "homebrew": "Homebrew",
        "scoop": "Scoop",
        "pipx": "pipx",
        "uv": "uv tool",
        "python": "pip",
    }.get(installation.method, installation.method)
    sys.stdout.write(
        f"km {version} is available (this is km {__version__}, installed with {how}); "
        f"upgrade it with:\n    {installation.upgrade_command}\n"
    )
    return 0
