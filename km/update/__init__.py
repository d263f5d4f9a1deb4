"""`km update [--check]`: move a km installed by install.sh to the newest release the way the
installer does (`release` is the sans-IO part: versions, archive names, SHA256SUMS; `switch`
downloads, verifies and switches; `cli` is the command)."""
