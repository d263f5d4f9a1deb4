"""Sensitive key names: word parts, run-together names, counters and safe names."""

from __future__ import annotations

import pytest

from km.redact import DEFAULT_RULES, RedactionRules, key_words

SENSITIVE = [
    "password",
    "Password",
    "PASSWORD",
    "passwd",
    "db_password",
    "dbPassword",
    "dbpassword",
    "user.password",
    "passwords",
    "passphrase",
    "secret",
    "secrets",
    "client_secret",
    "clientSecret",
    "AWS_SECRET_ACCESS_KEY",
    "token",
    "githubToken",
    "githubtoken",
    "GITHUB_TOKEN",
    "GITHUB_PERSONAL_ACCESS_TOKEN",
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "idToken",
    "csrftoken",
    "x-auth-token",
    "api_key",
    "apiKey",
    "APIKey",
    "apikey",
    "API-KEY",
    "x-api-key",
    "X-Api-Key",
    "XAPIKey",
    "OPENAI_API_KEY",
    "authorization",
    "Authorization",
    "Proxy-Authorization",
    "auth",
    "Auth",
    "basic_auth",
    "cookie",
    "Cookie",
    "set-cookie",
    "Set-Cookie",
    "cookies",
    "session",
    "sessionId",
    "session_id",
    "private_key",
    "privateKey",
    "private_key_id",
    "credential",
    "credentials",
    "googleCredentials",
]

NOT_SENSITIVE = [
    # LLM usage counters: plural `tokens`, or a counting word next to `token`
    "max_tokens",
    "maxTokens",
    "tokens_used",
    "tokensUsed",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_input_tokens",
    "token_count",
    "tokenCount",
    "TOKEN_LIMIT",
    "max_token",
    "token_budget",
    "tokens",
    # the kind, lifetime or place of a secret
    "token_type",
    "tokenType",
    "expires_in",
    "token_expires_in",
    "auth_type",
    "session_timeout",
    "password_min_length",
    "token_endpoint",
    "authorization_endpoint",
    "auth_url",
    "token_endpoint_auth_methods_supported",
    # MCP protocol fields
    "progressToken",
    # look-alikes
    "author",
    "authors",
    "oauth",
    "OAuth",
    "OAuthConfig",
    "tokenizer",
    "publicKey",
    "public_key",
    "key",
    "keys",
    "keyword",
    "name",
    "id",
    "passing",
    "secretary",
    "",
    "___",
]


@pytest.mark.parametrize("name", SENSITIVE)
def test_sensitive(name: str) -> None:
    assert DEFAULT_RULES.is_sensitive_key(name)


@pytest.mark.parametrize("name", NOT_SENSITIVE)
def test_not_sensitive(name: str) -> None:
    assert not DEFAULT_RULES.is_sensitive_key(name)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("githubToken", ("github", "token")),
        ("GITHUB_PERSONAL_ACCESS_TOKEN", ("github", "personal", "access", "token")),
        ("X-API-Key", ("x", "api", "key")),
        ("APIKey", ("api", "key")),
        ("OAuth2Token", ("oauth", "2", "token")),
        ("sha256sum", ("sha", "256", "sum")),
        ("été_token", ("t", "token")),
    ],
)
def test_key_words(name: str, words: tuple[str, ...]) -> None:
    assert key_words(name) == words


def test_extra_keys_add_to_defaults() -> None:
    rules = RedactionRules(extra_keys={"pin", "ssn"})
    assert rules.is_sensitive_key("cardPin")
    assert rules.is_sensitive_key("SSN")
    assert rules.is_sensitive_key("password")
    assert not DEFAULT_RULES.is_sensitive_key("cardPin")


def test_keys_replace_defaults() -> None:
    rules = RedactionRules(keys={"pin"})
    assert rules.is_sensitive_key("pin")
    assert not rules.is_sensitive_key("password")


def test_neutral_words_and_safe_keys_are_configurable() -> None:
    rules = RedactionRules(neutral_words=frozenset(), safe_keys=frozenset())
    assert rules.is_sensitive_key("token_count")
    assert rules.is_sensitive_key("progressToken")
    assert not rules.is_sensitive_key("max_tokens")  # a plural is another word


def test_decisions_are_memoized_and_bounded() -> None:
    rules = RedactionRules()
    for i in range(20_000):
        assert rules.is_sensitive_key(f"field_{i}_token") is True
    assert rules.is_sensitive_key("field_1_token")
