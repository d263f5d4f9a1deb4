"""Editing km's TOML config file: set or remove top-level keys, keep everything else.

`edit_toml(text, changes)` is sans-IO: it rewrites only the lines of the keys it changes (so
comments and the order of other keys survive) and checks the result by parsing it; a file
whose layout it cannot edit line by line (a multi-line value of a changed key) is written
anew from its parsed values. `write_private(path, text)` writes atomically (a temporary file
in the same directory, fsync, rename) with mode 0600, creating the directory with mode 0700:
the file holds the API key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping

from km.errors import KmError
from km.files import replace_atomically
from km.uplink.errors import ConfigWriteError

TomlValue = str | int | float | bool
_KEY_LINE = re.compile(r"""^\s*(?P<key>[A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


class ConfigUnreadable(KmError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"config file {path} is not valid TOML ({reason}): fix or remove it")
        self.path = path


def toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def parse(text: str, path: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigUnreadable(path, str(exc)) from None


def edit_toml(text: str, changes: Mapping[str, TomlValue | None], path: str = "config") -> str:
    """`text` with each key in `changes` set to its value, or removed when the value is None."""
    before = parse(text, path)
    expected: dict[str, object] = dict(before)
    for key, value in changes.items():
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    edited = _edit_lines(text, changes)
    if edited is not None and _parses_to(edited, expected):
        return edited
    return render(expected)


def render(values: Mapping[str, object]) -> str:
    lines = []
    tables = []
    for key, value in values.items():
        if isinstance(value, Mapping):  # a table such as [prices]: after the top-level keys
            tables.append(f"\n[{_toml_key(key)}]")
            tables.extend(f"{_toml_key(k)} = {_render_value(k, v)}" for k, v in value.items())
        else:
            lines.append(f"{_toml_key(key)} = {_render_value(key, value)}")
    lines.extend(tables)
    return "\n".join(lines).lstrip("\n") + ("\n" if lines else "")


def _render_value(key: object, value: object) -> str:
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"cannot write {key!r}: only strings, numbers, booleans and lists")
    return toml_value(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def _edit_lines(text: str, changes: Mapping[str, TomlValue | None]) -> str | None:
    lines = text.splitlines()
    done: set[str] = set()
    out: list[str] = []
    tail: list[str] = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith("["):
            tail = lines[index:]  # tables ([prices]) stay as they are, after the top-level keys
            break
        match = _KEY_LINE.match(line)
        key = match.group("key").strip("\"'") if match else None
        if key is None or key not in changes:
            out.append(line)
            continue
        if key in done:
            return None  # the same key twice: not valid TOML anyway
        done.add(key)
        value = changes[key]
        if value is not None:
            out.append(f"{_toml_key(key)} = {toml_value(value)}")
    for key, value in changes.items():
        if key not in done and value is not None:
            out.append(f"{_toml_key(key)} = {toml_value(value)}")
    out.extend(tail)
    return "\n".join(out) + ("\n" if out else "")


def _parses_to(text: str, expected: Mapping[str, object]) -> bool:
    try:
        return tomllib.loads(text) == dict(expected)
    except tomllib.TOMLDecodeError:
        return False


def read_text(path: str) -> str:
    """The file's text, or "" when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigUnreadable(path, str(exc)) from None


def write_private(path: str, text: str) -> None:
    """Replace `path` with `text` atomically, mode 0600; its directory is created 0700."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)  # whatever the umask
        replace_atomically(path, text.encode("utf-8"), 0o600)
    except OSError as exc:
        raise ConfigWriteError(path, exc.strerror or str(exc)) from None


def update_config(path: str, changes: Mapping[str, TomlValue | None]) -> None:
    """Set/remove keys in the config file at `path`, atomically."""
    write_private(path, edit_toml(read_text(path), changes, path))
