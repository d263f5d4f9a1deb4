"""Putting `km` in front of a server's command line and taking it out again (pure functions).

A wrapped server runs `<km> --name <server key> -- <original command> <original args...>`:
`--name` makes km show the server under the name the client gives it, and `--` keeps the
server's own options away from km's. Only that exact shape is ever unwrapped, so a `km`
line the user wrote by hand is left alone.
"""

from __future__ import annotations

NAME_FLAG = "--name"
END_OF_OPTIONS = "--"
WRAP_PREFIX_LEN = 3  # --name, <name>, --
KM_NAMES = frozenset({"km", "km.exe"})


def is_km(command: str) -> bool:
    """Whether `command` runs km: `km`, `km.exe`, or a path to either (any separator)."""
    base = command.replace("\\", "/").rsplit("/", 1)[-1]
    return base.lower() in KM_NAMES


def wrap(name: str, command: str, args: list[str], km_command: str = "km") -> tuple[str, list[str]]:
    """The command and arguments that run `command args` through km as server `name`."""
    return km_command, [NAME_FLAG, name, END_OF_OPTIONS, command, *args]


def is_wrapped(command: str, args: list[str]) -> bool:
    """Whether this command line has the exact shape `wrap` produces."""
    return (
        is_km(command)
        and len(args) > WRAP_PREFIX_LEN
        and args[0] == NAME_FLAG
        and args[2] == END_OF_OPTIONS
    )


def unwrap(command: str, args: list[str]) -> tuple[str, list[str]] | None:
    """The original command and arguments of a wrapped line, or None if it is not wrapped."""
    if not is_wrapped(command, args):
        return None
    return args[WRAP_PREFIX_LEN], args[WRAP_PREFIX_LEN + 1 :]


def wrapped_name(command: str, args: list[str]) -> str | None:
    """The `--name` a wrapped line gives its server, or None if it is not wrapped."""
    return args[1] if is_wrapped(command, args) else None
