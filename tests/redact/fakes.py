"""Fake secrets in real formats, built at run time so that no scanner takes this file for a leak."""

from __future__ import annotations

import base64

import orjson


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


GITHUB_CLASSIC = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
GITHUB_OAUTH = "gho_" + "Z9y8X7w6V5" * 3 + "u4T3s2"
GITHUB_FINE = "github_pat_" + "11ABCDEFG0" + "abcdefghijkl" + "_" + "x1Y2z3" * 10
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_TEMP_KEY_ID = "ASIA" + "JEXAMPLEXEG2JICEA"[:16]
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
SLACK = "xoxb-" + "1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "51H8aBcDeFgHiJkLmNoPqRsTu"
STRIPE_RESTRICTED = "rk_live_" + "51H8aBcDeFgHiJkLmNoPqRsTu"
OPENAI = "sk-proj-" + "Ab3dEf6hIj9lMn2pQr5tUv8x" * 2
ANTHROPIC = "sk-ant-api03-" + "a_B-c1D2e3F4g5H6i7J8k9L0" * 3
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
JWT = (
    _b64url({"alg": "HS256", "typ": "JWT"})
    + "."
    + _b64url({"sub": "1234567890", "name": "Jane", "iat": 1516239022})
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEowIBAAKCAQEA7bq98xLWwEXAMPLEONLYnotarealkey0123456789abcdefABCDEF"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
BEARER_TOKEN = "mF_9.B5f-4.1JqM"  # the RFC 6750 example
BASIC_CREDENTIALS = base64.b64encode(b"aladdin:opensesame").decode()
URL_PASSWORD = "s3cr3t-Pa55"
EMAIL = "jane.doe+mcp@example.co.uk"
CARD_VISA = "4111 1111 1111 1111"
CARD_AMEX = "3782-822463-10005"
CARD_PLAIN = "5555555555554444"

# (kind, text holding the secret, the secret that must disappear)
POSITIVE: list[tuple[str, str, str]] = [
    ("github_token", f"token is {GITHUB_CLASSIC}.", GITHUB_CLASSIC),
    ("github_token", f"oauth {GITHUB_OAUTH}", GITHUB_OAUTH),
    ("github_token", f"pat={GITHUB_FINE}", GITHUB_FINE),
    ("aws_access_key", f"id {AWS_KEY_ID} here", AWS_KEY_ID),
    ("aws_access_key", f"({AWS_TEMP_KEY_ID})", AWS_TEMP_KEY_ID),
    ("aws_secret_key", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    ("aws_secret_key", f"AWS_SECRET_ACCESS_KEY: '{AWS_SECRET}'", AWS_SECRET),
    ("aws_secret_key", f"{AWS_KEY_ID},{AWS_SECRET}", AWS_SECRET),
    ("slack_token", f"SLACK {SLACK}", SLACK),
    ("stripe_key", f"use {STRIPE} now", STRIPE),
    ("stripe_key", f"use {STRIPE_RESTRICTED} now", STRIPE_RESTRICTED),
    ("secret_key", f"OPENAI {OPENAI}", OPENAI),
    ("secret_key", f"key: {ANTHROPIC}", ANTHROPIC),
    ("google_api_key", f"maps?key={GOOGLE}&v=3", GOOGLE),
    ("jwt", f"cookie {JWT}; path=/", JWT),
    ("private_key", f"key:\n{PEM}\nrest", PEM_BODY),
    ("bearer", f"Authorization: Bearer {BEARER_TOKEN}", BEARER_TOKEN),
    ("bearer", f"curl -H 'authorization: bearer {OPENAI}'", OPENAI),
    ("basic", f"header Basic {BASIC_CREDENTIALS}", BASIC_CREDENTIALS),
    ("url_credentials", f"postgres://admin:{URL_PASSWORD}@db.internal:5432/app", URL_PASSWORD),
    ("url_credentials", f"see https://bob:{URL_PASSWORD}@example.com/x", URL_PASSWORD),
    ("email", f"write to {EMAIL}.", EMAIL),
    ("email", "<a.b@corp.io>", "a.b@corp.io"),
    ("card", f"card {CARD_VISA} exp 12/29", CARD_VISA),
    ("card", f"amex {CARD_AMEX}", CARD_AMEX),
    ("card", f"n={CARD_PLAIN}", CARD_PLAIN),
    ("card", f"{CARD_VISA} 2029", CARD_VISA),
]

# Texts that look close to a secret and must come back unchanged.
NEGATIVE: list[str] = [
    "4111 1111 1111 1112",  # fails the Luhn check
    "4111111111111112",
    "1715250000123",  # a millisecond timestamp (and not an issuer range)
    "1234567890123456789012",  # too long for a card
    "order 12345",
    "version 0.4111111111111111",
    "user@localhost",
    "npm i @scope/pkg@1.2.3",
    "logo@2x.png",
    "git@github.com:org/repo.git",
    "Bearer authentication is used",
    "Basic authentication",
    "ghp_short",
    "xoxb-123",
    "sk-short",
    "sk_live_",
    "AKIA1234",  # too short
    "eyJhbGciOiJIUzI1NiJ9",  # one segment is not a JWT
    "https://example.com/path?x=1",
    "ssh://git@github.com/org/repo",
    "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    "max_tokens: 500",
    "tokens_used=1200, token_count=7",
    "the tokenizer splits words",
    "the author of the session notes",
    "[REDACTED:email] and [REDACTED:key]",
]
