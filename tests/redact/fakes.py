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

# Vendor credentials (km.redact.credentials), with a look-alike each must leave alone.
_HEX = "0123456789abcdef"
SLACK_WEBHOOK_PATH = "T" + "0ABCDEF12" + "/B" + "0ABCDEF34" + "/" + "aBcDeFgHiJkLmNoPqRsTuVwX"
SLACK_APP = "xapp-" + "1-A0123456789-1234567890123-" + _HEX * 4
SLACK_CONFIG = "xoxe.xoxp-" + "1-Mi0yLTEyMzQ1Njc4OTAtMTIzNA"
DISCORD_HOOK_SECRET = "Xy1_" * 17
GITLAB_PAT = "glpat-" + "xYz12AbCdEfGhIjKlMnO"
GITLAB_DEPLOY = "gldt-" + "aBcDeFgHiJkLmNoPqRsTuV"
GITLAB_RUNNER_REG = "GR1348941" + "aBcDeFgHiJkLmNoPqRsT"
NPM = "npm_" + "aB3dEf6hIj9lMn2pQr5tUv8xYz1AbC4dEf7H"
PYPI = "pypi-" + "AgEIcHlwaS5vcmc" + "CJDk2ZGQ5YWI4LTQ1ZjEtNDJkNy1hNmE5LTk1MzY0MjA4ZmE1ZgACKlsz"
HUGGINGFACE = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH"
HUGGINGFACE_ORG = "api_org_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH"
TWILIO = "SK" + _HEX * 2
SENDGRID = "SG." + "aBcDeFgHiJkLmNoPqRsTuV" + "." + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_aBcDe"
GOOGLE_CLIENT_SECRET = "GOCSPX-" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01"
GOOGLE_ACCESS = "ya29." + "a0AfH6SMBx-aBcDeFgHiJkLmNoPqRsTuV"
AZURE_ACCOUNT_KEY = (
    "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789+/aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789+/aBcDeFgH=="
)
AZURE_CLIENT_SECRET = "abc8" + "Q~" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234"
TELEGRAM = "123456789" + ":AA" + "HdqTcvCH1vGWJxfSeofSAs0K5PALDsaw3"
LINEAR = "lin_api_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcD"
NOTION = "secret_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcDeFg"
NOTION_NEW = "ntn_" + "12345678901" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678"
ATLASSIAN = "ATATT3" + "xFfGF0" + "aB1_cD2-eF3=" * 15
DATABRICKS = "dapi" + _HEX * 2
DIGITALOCEAN = "dop_v1_" + _HEX * 4
SHOPIFY = "shpat_" + _HEX * 2
POSTMAN = "PMAK-" + _HEX + "01234567" + "-" + _HEX * 2 + "ab"
SENTRY = "sntrys_" + "eyJpYXQiOjE3MDAwMDAwMDAuMCwidXJsIjoiaHR0cHM6Ly9zZW50cnkuaW8ifQ"
GRAFANA = "glsa_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345_0a1b2c3d"
FIGMA = "figd_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789_-aB"
PERPLEXITY = "pplx-" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcDeFgHiJkL"
GROQ = "gsk_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoP"
REPLICATE = "r8_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789a"
TAVILY = "tvly-" + "dev-" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"
SUPABASE = "sbp_" + _HEX * 2 + "0a1b2c3d"
STRIPE_WEBHOOK = "whsec_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"

SLACK_HOOKS = "https://hooks.slack.com/services"
DISCORD_HOOKS = "https://discord.com/api/webhooks/123456789012345678"
AZURE_CONN = "DefaultEndpointsProtocol=https;AccountName=x"

POSITIVE += [
    ("slack_webhook", f"url {SLACK_HOOKS}/{SLACK_WEBHOOK_PATH} ok", SLACK_WEBHOOK_PATH),
    ("slack_token", f"app token {SLACK_APP}", SLACK_APP),
    ("slack_token", f"config {SLACK_CONFIG}", SLACK_CONFIG),
    ("discord_webhook", f"{DISCORD_HOOKS}/{DISCORD_HOOK_SECRET}", DISCORD_HOOK_SECRET),
    ("gitlab_token", f"GITLAB {GITLAB_PAT}", GITLAB_PAT),
    ("gitlab_token", f"deploy {GITLAB_DEPLOY}", GITLAB_DEPLOY),
    ("gitlab_token", f"runner {GITLAB_RUNNER_REG}", GITLAB_RUNNER_REG),
    ("npm_token", f"//registry.npmjs.org/:_authToken={NPM}", NPM),
    ("npm_token", f"NPM {NPM}", NPM),
    ("pypi_token", f"upload with {PYPI}", PYPI),
    ("huggingface_token", f"HF {HUGGINGFACE}", HUGGINGFACE),
    ("huggingface_token", f"org {HUGGINGFACE_ORG}", HUGGINGFACE_ORG),
    ("twilio_key", f"twilio {TWILIO}", TWILIO),
    ("sendgrid_key", f"mail {SENDGRID}", SENDGRID),
    ("google_oauth", f"client {GOOGLE_CLIENT_SECRET}", GOOGLE_CLIENT_SECRET),
    ("google_oauth", f"access {GOOGLE_ACCESS}", GOOGLE_ACCESS),
    ("azure_key", f"{AZURE_CONN};AccountKey={AZURE_ACCOUNT_KEY};", AZURE_ACCOUNT_KEY),
    ("azure_client_secret", f"secret {AZURE_CLIENT_SECRET}", AZURE_CLIENT_SECRET),
    ("telegram_bot_token", f"bot {TELEGRAM} here", TELEGRAM),
    ("linear_key", f"LINEAR {LINEAR}", LINEAR),
    ("notion_token", f"NOTION {NOTION}", NOTION),
    ("notion_token", f"NOTION {NOTION_NEW}", NOTION_NEW),
    ("atlassian_token", f"jira {ATLASSIAN}", ATLASSIAN),
    ("databricks_token", f"db {DATABRICKS}", DATABRICKS),
    ("digitalocean_token", f"do {DIGITALOCEAN}", DIGITALOCEAN),
    ("shopify_token", f"shop {SHOPIFY}", SHOPIFY),
    ("postman_key", f"postman {POSTMAN}", POSTMAN),
    ("sentry_token", f"sentry {SENTRY}", SENTRY),
    ("grafana_token", f"grafana {GRAFANA}", GRAFANA),
    ("figma_token", f"figma {FIGMA}", FIGMA),
    ("perplexity_key", f"pplx {PERPLEXITY}", PERPLEXITY),
    ("groq_key", f"groq {GROQ}", GROQ),
    ("replicate_token", f"replicate {REPLICATE}", REPLICATE),
    ("tavily_key", f"tavily {TAVILY}", TAVILY),
    ("supabase_key", f"supabase {SUPABASE}", SUPABASE),
    ("stripe_key", f"webhook {STRIPE_WEBHOOK}", STRIPE_WEBHOOK),
]  # fmt: skip

NEGATIVE += [
    "see https://hooks.slack.com/services/ for incoming webhooks",
    "https://api.slack.com/apps and xapp-1-short",
    "https://discord.com/api/webhooks (docs)",
    "glpat-short and gitlab-ci.yml",
    "npm_config_registry=https://registry.npmjs.org/",  # an npm setting, not a token
    "npm_lifecycle_event",
    "pypi-simple index and pypi-AgEIcHlwaS5vcmc alone",
    "hf_hub_download(repo_id) and hf_transfer",
    "api_org_name",
    "the task asks SKU 0123456789abcdef to ship",  # 'sk' and hex, but no Twilio key
    "SKIP" + "0123456789abcdef" * 2 + "00",  # glued to letters: not a key
    "SG.com and SG.short.value",
    "GOCSPX-short",
    "ya29.short",
    "AccountName=x;EndpointSuffix=core.windows.net",
    "~/Q~/path and abc8Q~short",
    "time 12:AAPL stock quote",
    "at 123456789:AAshort",
    "lin_api_docs and linear.app",
    "secret_sauce_recipe and ntn_short",
    "ATATT3 is the prefix of an Atlassian token",
    "dapi" + "0123456789abcdef" + " is too short",
    "dop_v1_short and do_v1",
    "shpat_short",
    "PMAK-short",
    "sntrys_short",
    "glsa_short and glc_x",
    "figd_short",
    "pplx-short",
    "gsk_short",
    "r8_short",
    "tvly-short",
    "sbp_short",
    "whsec_",
]
