"""A command line with its secrets redacted: what km stores about the server it runs.

Every argument is redacted as text (`km.redact.redact_text`: tokens by their shape,
`NAME=value` and `--flag=value` with a sensitive name, passwords in URLs such as
`DATABASE_URL=postgres://u:pw@h/db`), and an option with a sensitive name takes the argument
after it as its value: `--api-key sk-...`, `--password hunter2`, `-H 'Authorization: ...'`
(`docker run -e GITHUB_TOKEN=ghp_...` is a `NAME=value` argument). Sans-IO.
"""

from __future__ import annotations

from collections.abc import Sequence

from km.redact.patterns import marker
from km.redact.payload import redact_text
from km.redact.rules import DEFAULT_RULES, RedactionRules

_KEY = marker("key")


def redact_argv(argv: Sequence[str], rules: RedactionRules = DEFAULT_RULES) -> list[str]:
    """`argv` with every secret replaced by a marker (a list of the same length)."""
    out: list[str] = []
    value_next = False
    for arg in argv:
        if value_next and not _is_option(arg):
            out.append(_KEY if arg else arg)
            value_next = False
            continue
        value_next = _is_option(arg) and "=" not in arg and _sensitive_option(arg, rules)
        out.append(redact_text(arg, rules))
    return out


def _is_option(arg: str) -> bool:
    return len(arg) > 1 and arg[0] == "-" and not arg[1:2].isdigit()


def _sensitive_option(arg: str, rules: RedactionRules) -> bool:
    name = arg.lstrip("-")
    return bool(name) and rules.is_sensitive_key(name)
