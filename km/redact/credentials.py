"""Vendor credentials recognised by their shape: the token formats of the services MCP servers
are configured for (GitLab, Slack webhooks, npm, PyPI, Hugging Face, Twilio, SendGrid, Azure,
Discord, Telegram, Linear, Notion, Atlassian, Databricks, DigitalOcean, Shopify, ...).

Taken from the rule set of gitleaks (`config/gitleaks.toml`), keeping the rules whose token has
a fixed prefix: that prefix is the rule's needle, so the one-pass pre-scan
(`km.redact.needles`) decides in the same pass whether the regex needs to run at all. Rules a
prefix cannot anchor (a bare 32-hex Twilio auth token, a Discord bot token) are left to
sensitive key names (`TWILIO_AUTH_TOKEN=...`, `"discord_token": ...`).

Plain data, turned into `ValuePattern`s by `km.redact.patterns` (the list is documented, with
examples, in docs/redaction.md). Each row: (kind, regex, needles, characters that must not come
right before a match, a regex extending the match leftwards). A named group `v` is the part
replaced (`https://hooks.slack.com/services/[REDACTED:slack_webhook]`).
"""

from __future__ import annotations

ALNUM = "alnum"  # letters and digits
WORD = "word"  # letters, digits, _
B64URL = "b64url"  # letters, digits, _ and -

VendorRule = tuple[str, str, tuple[str, ...], str, str | None]

_HEX32 = "[a-fA-F0-9]{32}"
_END = "(?![A-Za-z0-9])"
_END_B64URL = r"(?![A-Za-z0-9_\-])"

VENDOR_RULES: tuple[VendorRule, ...] = (
    (
        "slack_webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9+/_\-]{30,120})",
        ("hooks.slack.com",),
        "",
        None,
    ),
    (
        "discord_webhook",
        r"discord(?:app)?\.com/api/webhooks/[0-9]{5,30}/(?P<v>[A-Za-z0-9_\-]{60,70})",
        ("discord",),
        "",
        None,
    ),
    (
        "gitlab_token",
        r"gl(?:pat|dt|ptt|rt|cbt|ft|imt|oas|soat)-[A-Za-z0-9_\-]{20,}" + _END_B64URL,
        ("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glft-", "glimt-", "gloas-", "glsoat-"),
        B64URL,
        None,
    ),
    ("gitlab_token", r"GR1348941[A-Za-z0-9_\-]{20}" + _END_B64URL, ("gr1348941",), B64URL, None),
    ("npm_token", r"npm_[A-Za-z0-9]{36}" + _END, ("npm_",), WORD, None),
    (
        "pypi_token",
        r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}" + _END_B64URL,
        ("pypi-ageichlwas5vcmc",),
        B64URL,
        None,
    ),
    ("huggingface_token", r"(?:hf|api_org)_[A-Za-z]{34}" + _END, ("hf_", "api_org_"), WORD, None),
    ("twilio_key", r"SK" + _HEX32 + _END, ("sk",), ALNUM, None),
    (
        "sendgrid_key",
        r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _END_B64URL,
        ("sg.",),
        B64URL,
        None,
    ),
    ("google_oauth", r"GOCSPX-[A-Za-z0-9_\-]{28}" + _END_B64URL, ("gocspx-",), B64URL, None),
    ("google_oauth", r"ya29\.[A-Za-z0-9_\-]{20,}" + _END_B64URL, ("ya29.",), B64URL, None),
    (
        "azure_key",
        r"(?i:AccountKey|SharedAccessKey)=(?P<v>[A-Za-z0-9+/]{20,}={0,2})",
        ("accountkey=", "sharedaccesskey="),
        "",
        None,
    ),
    (
        "azure_client_secret",
        r"Q~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])",
        ("q~",),
        WORD,
        r"[A-Za-z0-9_~.]{3}[0-9]$",
    ),
    (
        "telegram_bot_token",
        r":AA[A-Za-z0-9_\-]{33}" + _END_B64URL,
        (":aa",),
        WORD,
        r"[0-9]{8,10}$",
    ),
    (
        "linear_key",
        r"lin_(?:api|oauth)_[A-Za-z0-9]{40}" + _END,
        ("lin_api_", "lin_oauth_"),
        WORD,
        None,
    ),
    (
        "notion_token",
        r"(?:secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35})" + _END,
        ("secret_", "ntn_"),
        WORD,
        None,
    ),
    (
        "atlassian_token",
        r"AT(?:ATT|CTT)3[A-Za-z0-9_\-=]{150,}",
        ("atatt3", "atctt3"),
        B64URL,
        None,
    ),
    ("databricks_token", r"dapi[a-f0-9]{32}(?:-[0-9])?" + _END, ("dapi",), ALNUM, None),
    (
        "digitalocean_token",
        r"do[opr]_v1_[a-f0-9]{64}" + _END,
        ("doo_v1_", "dop_v1_", "dor_v1_"),
        WORD,
        None,
    ),
    (
        "shopify_token",
        r"shp(?:at|ca|pa|ss)_" + _HEX32 + _END,
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        WORD,
        None,
    ),
    ("postman_key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}" + _END, ("pmak-",), ALNUM, None),
    ("sentry_token", r"sntry[su]_[A-Za-z0-9+/=_\-]{40,}", ("sntrys_", "sntryu_"), WORD, None),
    ("grafana_token", r"gl(?:sa|c)_[A-Za-z0-9+/=_\-]{32,}", ("glsa_", "glc_"), WORD, None),
    ("figma_token", r"figd_[A-Za-z0-9_\-]{40,}", ("figd_",), WORD, None),
    ("perplexity_key", r"pplx-[A-Za-z0-9]{48}" + _END, ("pplx-",), ALNUM, None),
    ("groq_key", r"gsk_[A-Za-z0-9]{52}" + _END, ("gsk_",), WORD, None),
    ("replicate_token", r"r8_[A-Za-z0-9]{37}" + _END, ("r8_",), WORD, None),
    ("tavily_key", r"tvly-(?:dev-)?[A-Za-z0-9]{32}" + _END, ("tvly-",), ALNUM, None),
    (
        "supabase_key",
        r"sb(?:p|_secret)_[A-Za-z0-9_\-]{32,}" + _END_B64URL,
        ("sbp_", "sb_secret_"),
        B64URL,
        None,
    ),
)
