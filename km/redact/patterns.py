"""The built-in value patterns: secrets and personal data recognised by their shape.

Each pattern names its *kind* (the marker reads `[REDACTED:<kind>]`), a regex, and needles:
lowercase substrings one of which must occur in the lowercased text before the regex is worth
running (`in` is far cheaper than a regex scan). A pattern replaces its named group `v` when it
has one (the rest of the match, such as `Bearer ` or `://`, stays) and the whole match otherwise.
Its `replace` function can refuse a match: card numbers must pass the Luhn check, `Basic`
credentials must decode to `user:password`.

None of these regexes can match a marker, which keeps redaction idempotent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from km.redact.credentials import ALNUM, B64URL, VENDOR_RULES, WORD

MARKER_PREFIX = "[REDACTED:"
KIND_RE = re.compile(r"[a-z][a-z0-9_]*")
MARKER_RE = re.compile(r"\[REDACTED:[a-z][a-z0-9_]*\]")

_CARD_DIGITS = 13  # the fewest digits a card number has
_CARD_MAX_DIGITS = 19
_CARD_MAX_GROUPS = 5  # `6011 0000 0000 0000 000`; a longer list of numbers is not a card


def marker(kind: str) -> str:
    """The text that replaces a redacted value: `[REDACTED:email]`."""
    return f"{MARKER_PREFIX}{kind}]"


@dataclass(frozen=True, slots=True)
class ValuePattern:
    """One kind of secret recognised by its shape.

    The regex runs only on a text whose lowercase form holds one of `needles`, or (`digits`) a
    card number (13 to 19 digits passing the Luhn check); with neither it runs on every text. A
    match must not continue a run of `not_after` characters (checked in code, so that each regex
    can start with a literal, which the regex engine finds fast). `left`, when given, extends a
    match leftwards first (an e-mail is found at its `@`). `replace` gets the value (group `v`,
    else the match) and returns its replacement, or None to keep it; by default the value
    becomes the marker. A match touching a marker is skipped (`km.redact.text`), except for a
    `delimited` pattern, whose match its own delimiters make whole (a PEM block).
    """

    kind: str
    regex: re.Pattern[str]
    needles: tuple[str, ...] = ()
    digits: bool = False
    not_after: frozenset[str] = frozenset()
    left: re.Pattern[str] | None = None
    replace: Callable[[str], str | None] | None = None
    delimited: bool = False

    @property
    def always(self) -> bool:
        return not (self.needles or self.digits)


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def redact_cards(run: str) -> str | None:
    """Replace the card numbers inside a run of digit groups, or None when there is none.

    The run is cut at its separators; every span of up to five whole groups holding 13 to 19
    digits, the first of them 2-6 (the issuer ranges in use; a leading 1 would catch millisecond
    timestamps), is tried, and the longest passing the Luhn check is replaced.
    """
    parts = re.split(r"([ -])", run)
    groups = parts[0::2]
    seps = parts[1::2]
    if len(groups) > 1 and max(map(len, groups)) < 3:  # 5 groups of 2 make 10 digits, not 13
        return None
    out: list[str] = []
    i = 0
    found = False
    while i < len(groups):
        best = -1
        count = 0
        for j in range(i, min(len(groups), i + _CARD_MAX_GROUPS)):
            count += len(groups[j])
            if count > _CARD_MAX_DIGITS:
                break
            if count >= _CARD_DIGITS:
                number = "".join(groups[i : j + 1])
                if number[0] in "23456" and luhn_ok(number):
                    best = j
        if best < 0:
            out.append(groups[i])
            if i < len(seps):
                out.append(seps[i])
            i += 1
            continue
        found = True
        out.append(marker("card"))
        if best < len(seps):
            out.append(seps[best])
        i = best + 1
    return "".join(out) if found else None


def _basic(value: str) -> str | None:
    """`Basic` credentials are redacted only when they decode to `user:password`."""
    padded = value.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" in decoded and decoded.isprintable():
        return marker("basic")
    return None


def _bearer(value: str) -> str | None:
    """A bearer token has a digit or is long: `Bearer authentication` is prose."""
    if len(value) >= 20 or any(c.isdigit() for c in value):
        return marker("bearer")
    return None


_RETINA = re.compile(r"\d+(?:\.\d+)?x\.")


def _email(value: str) -> str | None:
    """`logo@2x.png` is an image and `git@github.com` an SSH remote, not a person."""
    local, _, domain = value.partition("@")
    if local == "git" or _RETINA.match(domain):
        return None
    return marker("email")


def _chars(*ranges: str) -> frozenset[str]:
    out: set[str] = set()
    for r in ranges:
        if len(r) == 3 and r[1] == "-":
            out.update(chr(c) for c in range(ord(r[0]), ord(r[2]) + 1))
        else:
            out.update(r)
    return frozenset(out)


_ALNUM = _chars("A-Z", "a-z", "0-9")
_B64URL_CHARS = _ALNUM | {"_", "-"}
_UPPER_DIGITS = _chars("A-Z", "0-9")
_WORD = _ALNUM | {"_"}
_NOT_AFTER = {"": frozenset[str](), ALNUM: _ALNUM, WORD: _WORD, B64URL: _B64URL_CHARS}
_B64URL = r"[A-Za-z0-9_\-]"
_NOT_B64URL_AFTER = r"(?![A-Za-z0-9_\-])"
# A value a `key = value` shape separates from its name: closing quote, `:`/`=`/`,`, opening quote.
_NEAR = r"""(?:\\?["'])?\s*[:=,|;]?\s*(?:\\?["'])?"""
_NAME = r"[A-Za-z0-9_.\-]"
_AWS_SECRET = r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"


def _p(
    kind: str,
    regex: str,
    needles: tuple[str, ...] = (),
    *,
    digits: bool = False,
    not_after: frozenset[str] = frozenset(),
    left: str | None = None,
    flags: int = 0,
    replace: Callable[[str], str | None] | None = None,
    delimited: bool = False,
) -> ValuePattern:
    return ValuePattern(
        kind,
        re.compile(regex, flags),
        needles,
        digits,
        not_after,
        re.compile(left) if left else None,
        replace,
        delimited,
    )


# Order matters: a PEM block or a URL is taken whole before its parts could match something else,
# a bearer token before the JWT it often is, an AWS secret before the key id next to it.
BUILTIN_PATTERNS: tuple[ValuePattern, ...] = (
    _p(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z)",
        ("private key",),
        flags=re.DOTALL,
        delimited=True,
    ),
    _p(
        "url_credentials",
        r":(?://|\\/\\/)(?P<v>(?!\[REDACTED:)[^\s/?#@:\"'<>\\]+:[^\s/?#@\"'<>\\]*)@",
        ("://", ":\\/\\/"),
    ),
    _p(
        "bearer",
        r"(?i:bearer)[ \t]+(?P<v>[A-Za-z0-9\-._~+/]{8,}=*)(?![A-Za-z0-9\-._~+/=])",
        ("bearer",),
        not_after=_WORD,
        replace=_bearer,
    ),
    _p(
        "basic",
        r"(?i:basic)[ \t]+(?P<v>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        ("basic",),
        not_after=_WORD,
        replace=_basic,
    ),
    _p(
        "jwt",
        rf"eyJ{_B64URL}{{2,}}\.{_B64URL}{{2,}}\.{_B64URL}*{_NOT_B64URL_AFTER}",
        ("eyj",),
        not_after=_B64URL_CHARS,
    ),
    _p(
        "github_token",
        r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        not_after=_WORD,
    ),
    _p(
        "slack_token",
        r"xox(?:[abposr]|e(?:\.xox[bp])?)-[A-Za-z0-9\-]{10,}",
        ("xox",),
        not_after=_ALNUM,
    ),
    _p("slack_token", r"xapp-[0-9]-[A-Za-z0-9\-]{20,}", ("xapp-",), not_after=_ALNUM),
    _p(
        "stripe_key",
        r"(?:[rs]k_(?:live|test|prod)|whsec)_[A-Za-z0-9]{10,}",
        ("k_live_", "k_test_", "k_prod_", "whsec_"),
        not_after=_ALNUM,
    ),
    _p("secret_key", rf"sk-{_B64URL}{{20,}}", ("sk-",), not_after=_B64URL_CHARS),
    _p(
        "google_api_key",
        rf"AIza{_B64URL}{{35}}{_NOT_B64URL_AFTER}",
        ("aiza",),
        not_after=_B64URL_CHARS,
    ),
    _p(
        "aws_secret_key",
        rf"(?i:aws{_NAME}{{0,30}}?secret{_NAME}{{0,30}}){_NEAR}{_AWS_SECRET}",
        ("aws",),
    ),
    _p(
        "aws_secret_key",
        rf"A(?:KIA|SIA)[A-Z0-9]{{16}}{_NEAR}{_AWS_SECRET}",
        ("akia", "asia"),
        not_after=_UPPER_DIGITS,
    ),
    _p(
        "aws_access_key",
        r"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])",
        ("akia", "asia"),
        not_after=_UPPER_DIGITS,
    ),
    *(
        _p(kind, regex, needles, not_after=_NOT_AFTER[before], left=left)
        for kind, regex, needles, before, left in VENDOR_RULES
    ),
    _p(
        "email",
        r"@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9\-])",
        ("@",),
        not_after=_chars("A-Z", "a-z", "0-9", "._%+-"),
        left=r"[A-Za-z0-9._%+\-]{1,64}$",
        replace=_email,
    ),
    _p(
        "card",
        # The lookbehind after the first digit keeps the regex's fast start on a digit.
        r"[0-9](?<![0-9A-Za-z_.][0-9])(?:[ \-]?[0-9]){12,}(?![0-9A-Za-z_])",
        digits=True,
        replace=redact_cards,
    ),
)

BUILTIN_KINDS: frozenset[str] = frozenset(p.kind for p in BUILTIN_PATTERNS)
