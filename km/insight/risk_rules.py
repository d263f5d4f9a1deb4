"""The risk rules, as data: one row per rule (id, severity, weight, what it looks at, what it
matches, why). `km.insight.risk` compiles and applies them; docs/rules-risk.md lists them.

A rule's `weight` is the score (0-100) a call gets when that rule alone matches; its severity
is the level that weight falls in (see `risk.level_for`), so one rule's finding and the call's
level agree. Ids by family: R1xx the tool's definition, R2xx paths, R3xx shell commands, R4xx
SQL, R5xx URLs, R6xx secrets the redactor found, R7xx flows across a session.

Patterns are Python regular expressions, matched case-insensitively. What each target means:
- `annotation`: `pattern` is the annotation's name; matches when the definition sets it true.
- `verb`: the tool's name (split into words) and the first sentence of its description.
- `path`: every string argument that looks like a file path or a `file://` URL, and the paths
  inside shell commands (these patterns are searched, not anchored).
- `command`: string arguments that look like shell commands (PowerShell and cmd included).
- `sql`: string arguments that look like SQL (an SQL key name or a leading SQL keyword).
- `host`: the host of each URL in the arguments (`http(s)`, `ws(s)`, `ftp`).
- `secret`: the kinds of secret the redactor replaced in the arguments.
- `roots`, `traversal`, `local`, `ip`, `flow`: computed rules, no pattern (see risk.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from km.insight.findings import CRITICAL, HIGH, LOW, MEDIUM


@dataclass(frozen=True, slots=True)
class RiskRule:
    id: str
    severity: str
    weight: int
    target: str
    pattern: str | None
    message: str  # what the call does and why it matters, one line
    # Lowercase strings one of which any text the pattern matches contains (backslashes read
    # as `/`): a call whose arguments hold none of a rule's needles skips its pattern. Empty:
    # the rule is always tried where it applies.
    needles: tuple[str, ...] = ()


# Shared pieces of patterns.
# What may stand before a path component; lookbehinds, so that a rule matching just before
# (`/root/`) does not consume it from the next one (`.docker/config.json`).
_SEP = r"(?:^|(?<=[\s'\"=:,;(\[{/\\]))"
_END = r"(?=$|[\s'\"`,;)\]}|&>])"  # what may follow a path or a word in a command
_ROOTED = r"(?:^|(?<=[\s'\"=:])|(?<=\.\.))"  # what may stand before a system path
_SQL_NAME = r"(?:[\w.$]+|\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|'[^']+'(?:@'[^']*')?)"  # a, s.a, "a b"
_SHELL = r"(?:sudo\s+)?(?:ba|z|k|da|fi|c|tc)?sh\b"
_FETCH = r"(?:curl|wget|fetch|iwr|invoke-webrequest|irm|invoke-restmethod)\b"

RULES: tuple[RiskRule, ...] = (
    # --- R1xx: what the tool's definition says it does --------------------------------------
    RiskRule(
        "R101", MEDIUM, 30, "annotation", "destructiveHint",
        "the server declares this tool destructive (annotations.destructiveHint)",
    ),
    RiskRule(
        "R102", LOW, 10, "annotation", "openWorldHint",
        "the server declares this tool reaches the open world (annotations.openWorldHint)",
    ),
    RiskRule(
        "R103", MEDIUM, 30, "verb",
        r"\b(?:delete|deletes|deleting|remove|removes|rm|destroy|destroys|drop|drops|wipe|wipes"
        r"|erase|erases|purge|purges|truncate|kill|kills|terminate|terminates|uninstall|revoke"
        r"|unlink|rmdir)\b",
        "the tool's name or description says it deletes or destroys",
    ),
    RiskRule(
        "R104", MEDIUM, 35, "verb",
        r"\b(?:exec|execute|executes|executing|run|runs|eval|evaluate|shell|bash|sh|cmd|terminal"
        r"|command|commands|spawn|subprocess|script|powershell|repl|interpreter|sql)\b",
        "the tool's name or description says it runs commands or code",
    ),
    RiskRule(
        "R105", MEDIUM, 25, "verb",
        r"\b(?:send|sends|sending|publish|publishes|upload|uploads|tweet|webhook"
        r"|notify|notifies|sms|dm|share|shares|forward|forwards|broadcast|transmit|exfiltrate)\b",
        "the tool's name or description says it sends data out",
    ),
    RiskRule(
        "R106", HIGH, 50, "verb",
        r"\b(?:pay|pays|paying|purchase|purchases|buy|buys|charge|charges|refund|refunds"
        r"|withdraw|withdraws|sell|sells|payout|payouts)\b"
        r"|\b(?:transfer|transfers|send|sends|wire|wires)\s+(?:funds|money|payments?|crypto"
        r"|tokens?|usdc|usdt|eth|btc|sol)\b"
        r"|\b(?:place|places|create|creates|submit|submits)\s+(?:an?\s+)?(?:order|orders"
        r"|payment|payments|trade|trades|invoice|invoices|transfer|transfers)\b",
        "the tool's name or description says it moves money or places orders",
    ),
    RiskRule(
        "R107", LOW, 10, "verb",
        r"\b(?:write|writes|create|creates|update|updates|edit|edits|modify|modifies|move|moves"
        r"|rename|renames|insert|inserts|set|put|patch|push|commit|save|saves|append|replace"
        r"|apply|deploy|install|merge|chmod|chown)\b",
        "the tool's name or description says it writes or changes things",
    ),
    # --- R2xx: paths -------------------------------------------------------------------------
    RiskRule(
        "R201", CRITICAL, 85, "path",
        _SEP + r"(?:\.ssh/(?:id_[a-z0-9_]+|identity|authorized_keys|config|[^/\s'\"]*_key)"
        r"|\.gnupg(?:/|" + _END + r")|id_(?:rsa|dsa|ecdsa|ed25519)(?:" + _END + r"|\.pub)"
        r"|[^/\s'\"]+\.(?:pem|key|p12|pfx|kdbx|gpg|asc|ppk)" + _END + r")",
        "a private key or key store: SSH, GPG, TLS or password-manager keys",
        needles=(
            ".ssh", ".gnupg", "id_", ".pem", ".key", ".p12", ".pfx", ".kdbx", ".gpg", ".asc",
            ".ppk",
        ),
    ),
    RiskRule(
        "R202", HIGH, 75, "path",
        _SEP + r"(?:\.aws/(?:credentials|config)|\.config/gcloud/|application_default_credentials"
        r"\.json|\.azure/|\.kube/config|\.docker/config\.json|\.netrc|_netrc|\.npmrc|\.pypirc"
        r"|\.git-credentials|\.config/gh/hosts\.yml|\.terraform\.d/credentials|\.vault-token"
        r"|credentials\.json|\.boto|\.s3cfg|\.pgpass|\.my\.cnf|keychains?/|login\.keychain"
        r"|\.password-store/)",
        "a cloud, registry or service credentials file",
        needles=(
            ".aws", "gcloud", "application_default_credentials", ".azure", ".kube", ".docker",
            "netrc", ".npmrc", ".pypirc", ".git-credentials", "gh/hosts", ".terraform.d",
            ".vault-token", "credentials.json", ".boto", ".s3cfg", ".pgpass", ".my.cnf",
            "keychain", ".password-store",
        ),
    ),
    RiskRule(
        "R203", HIGH, 60, "path",
        _SEP + r"\.env(?!\.(?:example|sample|template|dist|defaults?|schema)\b)(?:\.[a-z0-9_-]+)?"
        + _END
        + r"|" + _SEP + r"(?:secrets?\.(?:json|ya?ml|toml)|\.secrets?)" + _END,
        "an environment or secrets file (.env, secrets.json): usually holds API keys",
        needles=(".env", "secret"),
    ),
    RiskRule(
        "R204", HIGH, 55, "path",
        _SEP + r"(?:\.(?:bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv"
        r"|zlogin|kshrc|cshrc|tcshrc|inputrc)|\.config/fish/config\.fish|\.config/autostart/"
        r"|launchagents/|launchdaemons/|\.git/hooks/|/etc/cron|crontab|/etc/profile"
        r"|/etc/rc\.local|/etc/systemd/|\.config/systemd/user/|microsoft\.powershell_profile\.ps1"
        r"|start menu/programs/startup)",
        "a shell start-up, cron or autostart file: writing it runs code later (persistence)",
        needles=(
            "bash", ".profile", "zsh", "zprofile", "zlogin", "kshrc", "cshrc", "inputrc", "fish",
            "autostart", "launchagents", "launchdaemons", ".git/hooks", "cron", "/etc/profile",
            "rc.local", "systemd", "powershell_profile", "startup",
        ),
    ),
    RiskRule(
        "R205", CRITICAL, 85, "path",
        _ROOTED + r"/etc/(?:shadow|gshadow|sudoers|master\.passwd|security/opasswd)"
        r"|/etc/sudoers\.d/|" + _ROOTED + r"/etc/ssh/ssh_host_[a-z0-9_]*key"
        r"|windows[/\\]system32[/\\]config[/\\](?:sam|system|security)" + _END,
        "system password or privilege files (/etc/shadow, /etc/sudoers, the SAM hive)",
        needles=(
            "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "master.passwd", "opasswd",
            "ssh_host_", "system32",
        ),
    ),
    RiskRule(
        "R206", MEDIUM, 40, "path",
        _ROOTED + r"(?:/etc/(?:passwd|hosts|group|ssh/|pam\.d/|ld\.so)|/boot/|/root(?:/|"
        + _END + r")|/proc/|/sys/|/dev/(?:sd|nvme|hd|mem|kmem|disk|mmcblk|xvd|vd)"
        r"|/usr/(?:s?bin|lib)/|/s?bin/|/var/lib/|/system/|/library/(?:keychains|preferences)"
        r"|[a-z]:[/\\]windows(?:[/\\]|" + _END + r"))",
        "a system file or directory outside any user's data",
        needles=(
            "/etc/", "/boot/", "/root", "/proc/", "/sys/", "/dev/", "/usr/", "bin/", "/var/lib/",
            "/system/", "/library/", "windows",
        ),
    ),
    RiskRule(
        "R207", HIGH, 65, "path",
        _SEP + r"(?:mcp\.json|claude_desktop_config\.json|\.claude\.json|\.claude/settings"
        r"(?:\.local)?\.json|\.cursor/mcp\.json|mcp_config\.json|\.codeium/|cline_mcp_settings"
        r"\.json|\.continue/config\.(?:json|ya?ml)|\.codex/config\.toml"
        r"|login data|cookies(?:\.sqlite)?" + _END + r"|\.mozilla/firefox/|google/chrome/"
        r"|bravesoftware/|key[34]\.db|logins\.json)",
        "an AI client's MCP configuration or a browser's credential store",
        needles=(
            "mcp.json", "claude", "mcp_config", "codeium", "cline_mcp", "continue/config",
            ".codex", "login data", "cookies", "mozilla", "chrome", "bravesoftware", "key3.db",
            "key4.db", "logins.json",
        ),
    ),
    RiskRule(
        "R208", MEDIUM, 30, "traversal", None,
        "a path climbs out of its directory with `..` segments",
        needles=("..", "%2e"),
    ),
    RiskRule(
        "R209", MEDIUM, 35, "roots", None,
        "a path lies outside every root the client gave the server",
    ),
    # --- R3xx: shell commands ------------------------------------------------------------------
    RiskRule(
        "R301", CRITICAL, 95, "command",
        r"/dev/(?:tcp|udp)/[^\s/]+/\d+|\b(?:nc|ncat|netcat)\b[^|;\n]*\s-(?:e|c)\s"
        r"|\bsocat\b[^|;\n]*\bexec:|\bmkfifo\b[^\n]*\|\s*(?:nc|ncat|netcat)\b"
        r"|socket\.socket\([^)]*\)[^\n]*(?:subprocess|pty\.spawn|os\.dup2)"
        r"|\bbash\s+-i\s*>&|new-object\s+(?:system\.)?net\.sockets\.tcpclient",
        "a reverse shell: hands a remote machine a shell on this one",
        needles=(
            "/dev/tcp", "/dev/udp", "nc", "netcat", "socat", "mkfifo", "socket", "bash",
            "tcpclient",
        ),
    ),
    RiskRule(
        "R302", CRITICAL, 90, "command",
        r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"
        r"|\b(?:dd)\b[^|;\n]*\bof=/dev/(?:sd|nvme|hd|disk|mmcblk|xvd|vd|rdisk)"
        r"|\bmkfs(?:\.[a-z0-9]+)?\b|\bwipefs\b|\bshred\b[^|;\n]*/dev/"
        r"|>\s*/dev/(?:sd|nvme|hd|disk|mmcblk)[a-z0-9]*\b|\bformat(?:-volume)?\s+[a-z]:"
        r"|\bformat-volume\b|\bdiskpart\b",
        "destroys a disk or the machine's availability (fork bomb, dd/mkfs on a device)",
        needles=("{", "/dev/", "mkfs", "wipefs", "format", "diskpart"),
    ),
    RiskRule(
        "R303", CRITICAL, 85, "command",
        _FETCH + r"[^|;\n]*\|\s*(?:" + _SHELL + r"|python[0-9.]*|perl|ruby|node|php|iex"
        r"|invoke-expression)"
        r"|\b(?:ba|z)?sh\s+(?:-c\s+)?[\"']?(?:<\(|\$\()\s*" + _FETCH
        + r"|\b(?:iex|invoke-expression)\b[^\n]*(?:downloadstring|" + _FETCH + r")",
        "downloads a script and runs it unseen (curl | sh)",
        needles=("curl", "wget", "fetch", "iwr", "invoke-", "irm", "iex"),
    ),
    RiskRule(
        "R304", CRITICAL, 90, "command",
        r"\brm\s+(?:-[a-z]*\s+)*-[a-z]*(?:r[a-z]*f|f[a-z]*r)[a-z]*\s+(?:-[-a-z]+\s+)*"
        r"(?:/|/\*|~/?|\$home/?|\*|\.\.?/?)(?=$|[\s;&|])"
        r"|\brm\s+(?:--recursive\s+--force|--force\s+--recursive)\s+(?:/|~/?|\*)(?=$|[\s;&|])"
        r"|--no-preserve-root",
        "deletes everything under /, the home directory or the working directory",
        needles=("rm", "--no-preserve-root"),
    ),
    RiskRule(
        "R305", HIGH, 60, "command",
        r"\brm\s+(?:-[a-z]*\s+)*-[a-z]*(?:r[a-z]*f|f[a-z]*r)[a-z]*\b"
        r"|\brm\s+(?:-[a-z]+\s+)*-[a-z]*r[a-z]*\s+(?:-[a-z]+\s+)*-[a-z]*f"
        r"|\brm\s+(?:-[a-z]+\s+)*-[a-z]*f[a-z]*\s+(?:-[a-z]+\s+)*-[a-z]*r"
        r"|\brm\s+--(?:recursive|force)\b|\bremove-item\b[^|;\n]*-recurse"
        r"|\b(?:rd|rmdir)\s+/s\b|\bdel\s+(?:/[a-z]\s+)*/[sf]\b|\bfind\b[^|;\n]*\s-delete\b",
        "deletes files recursively and without asking (rm -rf)",
        needles=("rm", "remove-item", "/s", "/f", "-delete"),
    ),
    RiskRule(
        "R306", HIGH, 55, "command",
        r"(?:^|[\s;&|(`]|\$\()(?:sudo|doas|pkexec)\s|(?:^|[\s;&|])su[ \t]+(?:-|root\b)"
        r"|\brunas\s+/user:|start-process\b[^\n]*-verb\s+runas",
        "runs as root or another user (sudo)",
        needles=("sudo", "doas", "pkexec", "su ", "su\t", "runas"),
    ),
    RiskRule(
        "R307", MEDIUM, 35, "command",
        r"\bchmod\s+(?:-[a-z]+\s+)*(?:0?777|a\+rwx|o\+w|[ugoa]*\+[rwx]*s|[0-7]?[4-7][0-7]{3}"
        r"\s+/)\b|\bchown\s+(?:-[a-z]+\s+)*root\b|\bicacls\b[^\n]*everyone:\(?f",
        "opens permissions to everyone or sets setuid (chmod 777)",
        needles=("chmod", "chown", "icacls"),
    ),
    RiskRule(
        "R308", HIGH, 50, "command",
        r"\|\s*" + _SHELL + r"|\bbase64\s+(?:-d|--decode|-D)\b[^\n]*\|"
        r"|\beval\s+[\"']?\$\(|\bpython[0-9.]*\s+-c\s+[\"'][^\"']*(?:exec|eval)\("
        r"|-encodedcommand\b|\bpowershell(?:\.exe)?\s+(?:-[a-z]+\s+)*-e(?:nc)?\s",
        "pipes text into a shell or runs encoded code",
        needles=("|", "base64", "eval", "python", "-encodedcommand", "powershell"),
    ),
    RiskRule(
        "R309", HIGH, 50, "command",
        r"\b(?:shutdown|reboot|halt|poweroff)\b|\binit\s+[06]\b|\bkill\s+-9\s+-1\b"
        r"|\bkillall\b|\bpkill\s+-9\b|\bsystemctl\s+(?:stop|disable|mask)\b"
        r"|\bstop-computer\b|\brestart-computer\b",
        "shuts down, reboots or kills processes broadly",
        needles=(
            "shutdown", "reboot", "halt", "poweroff", "init", "kill", "systemctl",
            "stop-computer", "restart-computer",
        ),
    ),
    RiskRule(
        "R310", MEDIUM, 30, "command",
        r"\bgit\s+push\b[^;\n]*(?:\s--force\b|\s-f\b|\s\+\S)|\bgit\s+reset\s+--hard\b"
        r"|\bgit\s+clean\s+-[a-z]*[fdx][a-z]*\b|\bgit\s+filter-branch\b"
        r"|\bgit\s+branch\s+-D\b|\bgit\s+checkout\s+--\s+\.",
        "rewrites or discards version-control history or work (git push --force)",
        needles=("git",),
    ),
    RiskRule(
        "R311", MEDIUM, 35, "command",
        r"\bhistory\s+-c\b|\bunset\s+histfile\b|\bhistfile=/dev/null\b|\bsetenforce\s+0\b"
        r"|\biptables\s+-F\b|\bufw\s+disable\b|\bset-mppreference\b[^\n]*-disable"
        r"|\bspctl\s+--master-disable\b|\bcsrutil\s+disable\b",
        "hides its tracks or turns off a security control",
        needles=(
            "history", "histfile", "setenforce", "iptables", "ufw", "set-mppreference", "spctl",
            "csrutil",
        ),
    ),
    RiskRule(
        "R312", HIGH, 60, "command",
        _FETCH + r"[^|;\n]*(?:\s(?:-d|--data(?:-binary|-raw|-urlencode)?|-F|--form|-T"
        r"|--upload-file)\s+@|\s--post-file[= ])"
        r"|\b(?:scp|rsync)\b[^|;\n]*\s[a-z0-9_.-]+@[a-z0-9_.-]+:"
        r"|\|\s*(?:nc|ncat|netcat)\s+\S+\s+\d+",
        "uploads a local file or stream to another host",
        needles=("curl", "wget", "fetch", "iwr", "invoke-", "irm", "scp", "rsync", "nc", "netcat"),
    ),
    # --- R4xx: SQL -----------------------------------------------------------------------------
    RiskRule(
        "R401", HIGH, 65, "sql",
        r"\bdrop\s+(?:table|database|schema|view|index|user|role|function|procedure|trigger"
        r"|sequence|materialized\s+view|extension)\s+(?:if\s+exists\s+)?" + _SQL_NAME
        + r"(?:\s*,\s*" + _SQL_NAME + r")*\s*(?:;|$|cascade\b|restrict\b|\()"
        r"|\bdrop\s+owned\s+by\b",
        "drops a table, database or other object (DROP)",
        needles=("drop",),
    ),
    RiskRule(
        "R402", HIGH, 60, "sql",
        r"\btruncate\s+(?:table\s+)?(?:only\s+)?" + _SQL_NAME
        + r"(?:\s*,\s*" + _SQL_NAME + r")*\s*(?:;|$|cascade\b|restrict\b|restart\b|continue\b)",
        "empties a table (TRUNCATE)",
        needles=("truncate",),
    ),
    RiskRule(
        "R403", HIGH, 60, "sql",
        r"\bdelete\s+from\s+" + _SQL_NAME + r"(?:\s+as\s+\w+)?\s*(?:;|$|returning\b)",
        "deletes every row of a table (DELETE without WHERE)",
        needles=("delete",),
    ),
    RiskRule(
        "R404", HIGH, 55, "sql",
        r"\bupdate\s+" + _SQL_NAME + r"(?:\s+as\s+\w+)?\s+set\s+" + _SQL_NAME + r"\s*="
        r"(?:(?!\bwhere\b)[^;])*(?:;|$)",
        "changes every row of a table (UPDATE without WHERE)",
        needles=("update",),
    ),
    RiskRule(
        "R405", MEDIUM, 40, "sql",
        r"\b(?:grant|revoke)\s+(?:all|select|insert|update|delete|usage|execute|create|alter"
        r"|drop|references|connect|temporary|trigger|truncate|super|file|process|reload"
        r"|shutdown|[\w\s]*privileges?)\b[\w ,()]*\s(?:on|to|from)\b"
        r"|\b(?:create|alter)\s+(?:user|role|login)\s+" + _SQL_NAME + r"|\bset\s+password\b",
        "changes who may do what in the database (GRANT, CREATE USER)",
        needles=("grant", "revoke", "user", "role", "login", "password"),
    ),
    RiskRule(
        "R406", MEDIUM, 35, "sql",
        r"\balter\s+table\s+[\w\".`\[\]]+\s+drop\b",
        "drops a column or constraint (ALTER TABLE ... DROP)",
        needles=("alter",),
    ),
    # --- R5xx: URLs ----------------------------------------------------------------------------
    RiskRule(
        "R501", LOW, 10, "local", None,
        "sends a request to a host that is not this machine",
    ),
    RiskRule(
        "R502", MEDIUM, 35, "ip", None,
        "a URL names a public IP address instead of a host name",
    ),
    RiskRule(
        "R503", HIGH, 60, "host",
        r"(?:^|\.)(?:pastebin\.com|paste\.ee|pastie\.org|hastebin\.com|ghostbin\.\w+|rentry\.co"
        r"|dpaste\.(?:com|org)|termbin\.com|ix\.io|sprunge\.us|0x0\.st|transfer\.sh|file\.io"
        r"|temp\.sh|bashupload\.com|webhook\.site|requestbin\.(?:com|net)|pipedream\.net"
        r"|hookbin\.com|beeceptor\.com|requestcatcher\.com|postb\.in|ngrok(?:-free)?\.(?:io|app"
        r"|dev)|trycloudflare\.com|serveo\.net|loca\.lt|localtunnel\.me|localhost\.run"
        r"|burpcollaborator\.net|oastify\.com|interact\.sh|oast\.(?:fun|live|site|online|pro|me)"
        r"|canarytokens\.com|dnslog\.cn|ceye\.io|pipedream\.com)$",
        "a paste, webhook-capture or tunnel site: a common drop box for stolen data",
    ),
    RiskRule(
        "R504", CRITICAL, 80, "host",
        r"^(?:169\.254\.169\.254|metadata\.google\.internal|metadata|100\.100\.100\.200"
        r"|fd00:ec2::254|169\.254\.170\.2)$",
        "the cloud metadata service: hands out the machine's cloud credentials",
    ),
    RiskRule(
        "R505", HIGH, 55, "url",
        r"^https?://(?:(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/"
        r"|api\.telegram\.org/bot|hooks\.slack\.com/services/)",
        "a chat webhook or bot API: posts whatever it is sent to a channel",
    ),
    # --- R6xx: secrets the redactor found in the arguments -------------------------------------
    RiskRule(
        "R601", CRITICAL, 85, "secret", r"^private_key$",
        "the arguments carry a private key",
    ),
    RiskRule(
        "R602", HIGH, 65, "secret",
        r"^(?:aws_access_key|aws_secret_key|github_token|slack_token|stripe_key|google_api_key"
        r"|secret_key|url_credentials|jwt|bearer|basic)$",
        "the arguments carry a credential (API key, token or password)",
    ),
    RiskRule(
        "R603", MEDIUM, 40, "secret", r"^(?:key|card)$|^(?!email$|payload$)",
        "the arguments carry a value under a sensitive name (password, token) or a card number",
    ),
    RiskRule(
        "R604", LOW, 10, "secret", r"^email$",
        "the arguments carry an email address",
    ),
    # --- R7xx: flows across a session ---------------------------------------------------------
    RiskRule(
        "R701", HIGH, 70, "flow", None,
        "the session used tools that read private data, take in untrusted content and send data"
        " out: injected content can make the model leak the data (the lethal trifecta)",
    ),
)

RULES_BY_ID: dict[str, RiskRule] = {rule.id: rule for rule in RULES}

# --- Capabilities, for the toxic-flow rule (R701) --------------------------------------------
# Judged from a tool's definition: the words of its name and the first sentence of its
# description (`verb` text, as above), and its annotations. A tool whose name starts with a
# verb of OUTBOUND_FIRST_VERBS writes or sends: it is not taken to read private data or take in
# untrusted content, whatever nouns its description uses ("send_email" reads no inbox).
PRIVATE_DATA = "private_data"
UNTRUSTED_CONTENT = "untrusted_content"
SENDS_OUT = "sends_out"
CAPABILITIES = (PRIVATE_DATA, UNTRUSTED_CONTENT, SENDS_OUT)

CAPABILITY_PATTERNS: dict[str, str] = {
    PRIVATE_DATA: (
        r"\b(?:files?|filesystem|directory|directories|folders?|documents?|docs|drive|emails?"
        r"|mail|mailbox|inbox|messages?|chats?|conversations?|calendar|events|contacts?"
        r"|database|db|sql|tables?|records?|repo|repos|repository|repositories|git|commits?"
        r"|branch|branches|diff|notes?|memory|memories|graph|entities|nodes|secrets?|passwords?"
        r"|credentials?|keychain|vault|env|environment|customers?|accounts?|crm|tickets?"
        r"|private|personal|clipboard|screenshot|screen|history|logs?|photos?)\b"
    ),
    UNTRUSTED_CONTENT: (
        r"\b(?:web|webpage|website|websites|url|urls|http|https|internet|online|browse|browser"
        r"|scrape|scrapes|crawl|crawls|fetch|fetches|download|downloads|rss|feeds?|search\s+engine"
        r"|google|bing|duckduckgo|news|tweets?|twitter|reddit|emails?|inbox|mail|issues?"
        r"|pull\s+requests?|prs?|comments?|reviews?|slack|discord|telegram|messages?|html"
        r"|pages?|wiki|forum|posts?|transcripts?|youtube)\b"
    ),
    SENDS_OUT: (
        r"\b(?:send|sends|post|publish|publishes|upload|uploads|tweet|webhook|webhooks|notify"
        r"|sms|share|forward|broadcast|transmit|reply|comment|create\s+issue|create\s+pull"
        r"|pull\s+request|push|http|https|url|urls|fetch|fetches|request"
        r"|requests|curl|browse|navigate|download|downloads|api)\b"
    ),
}

OUTBOUND_FIRST_VERBS = frozenset(
    str.split(
        "send post publish upload tweet notify reply comment share forward broadcast write create"
        " update edit delete remove set put patch push add insert move rename"
    )
)
