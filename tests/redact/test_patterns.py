"""Value patterns, each kind positive and negative, through `redact_text`."""

from __future__ import annotations

import pytest

from km.redact import BUILTIN_KINDS, RedactionRules, marker, redact_text, redact_text_with_report
from km.redact.patterns import luhn_ok
from tests.redact import fakes


@pytest.mark.parametrize(("kind", "text", "secret"), fakes.POSITIVE)
def test_positive(kind: str, text: str, secret: str) -> None:
    out, report = redact_text_with_report(text)
    assert secret not in out
    assert marker(kind) in out
    assert report.get(kind, 0) >= 1
    assert redact_text(out) == out  # idempotent


@pytest.mark.parametrize("text", fakes.NEGATIVE)
def test_negative(text: str) -> None:
    out, report = redact_text_with_report(text)
    assert out is text
    assert report == {}


@pytest.mark.parametrize(
    "text",
    [
        f"{fakes.PEM}[REDACTED:key]",
        f"[REDACTED:key]{fakes.PEM}",
        f"[REDACTED:email]{fakes.PEM}[REDACTED:key]",
        f"[REDACTED:key]{fakes.PEM.split(chr(10) + '-----END')[0]}",  # a block cut short
    ],
)
def test_a_private_key_touching_a_marker_is_still_redacted(text: str) -> None:
    """A PEM block is whole by its own BEGIN and END lines: a marker next to it (text that
    already held one) does not keep it from being redacted, as it does other kinds."""
    out = redact_text(text)
    assert fakes.PEM_BODY not in out and "[REDACTED:private_key]" in out
    assert redact_text(out) == out


def test_every_kind_has_a_positive_case() -> None:
    assert {kind for kind, _, _ in fakes.POSITIVE} == BUILTIN_KINDS


def test_the_context_of_a_match_stays() -> None:
    header = f"Authorization: Bearer {fakes.BEARER_TOKEN}"
    assert redact_text(header) == "Authorization: Bearer [REDACTED:bearer]"
    assert redact_text(f"x Bearer {fakes.BEARER_TOKEN} y") == "x Bearer [REDACTED:bearer] y"
    assert redact_text("postgres://u:p4ss@db:5432/x") == (
        "postgres://[REDACTED:url_credentials]@db:5432/x"
    )
    assert redact_text(f"mail {fakes.EMAIL}, thanks") == "mail [REDACTED:email], thanks"
    assert redact_text(f"a {fakes.PEM} b") == "a [REDACTED:private_key] b"


def test_pem_block_cut_short_is_redacted_to_the_end() -> None:
    text = "key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"
    assert redact_text(text) == "key: [REDACTED:private_key]"


def test_pgp_and_encrypted_private_keys() -> None:
    labels = ("PGP PRIVATE KEY BLOCK", "ENCRYPTED PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY")
    for label in labels:
        text = f"-----BEGIN {label}-----\nabc\n-----END {label}-----"
        assert redact_text(text) == marker("private_key")


def test_two_cards_in_one_run_of_digits() -> None:
    out = redact_text(f"{fakes.CARD_VISA} {fakes.CARD_PLAIN}")
    assert out == "[REDACTED:card] [REDACTED:card]"


def test_card_glued_to_letters_or_decimals_is_kept() -> None:
    for text in (f"x{fakes.CARD_PLAIN}", f"{fakes.CARD_PLAIN}x", f"1.{fakes.CARD_PLAIN}"):
        assert redact_text(text) == text


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True), ("0", True)],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


def test_token_after_a_json_escape() -> None:
    # JSON text that did not parse keeps its escapes: `\n` ends a word.
    text = f"line\\n{fakes.GITHUB_CLASSIC}\\t{fakes.EMAIL}\\n{fakes.CARD_PLAIN}"
    out = redact_text(text)
    assert out == "line\\n[REDACTED:github_token]\\t[REDACTED:email]\\n[REDACTED:card]"


def test_kinds_can_be_turned_off() -> None:
    rules = RedactionRules(kinds=BUILTIN_KINDS - {"email"})
    text = f"{fakes.EMAIL} {fakes.GITHUB_CLASSIC}"
    assert redact_text(text, rules) == f"{fakes.EMAIL} [REDACTED:github_token]"


def test_extra_patterns() -> None:
    rules = RedactionRules(extra_patterns=[("ticket", r"TCK-[0-9]{6}")])
    assert redact_text("see TCK-123456 and TCK-12", rules) == "see [REDACTED:ticket] and TCK-12"
    assert redact_text("see TCK-123456") == "see TCK-123456"
