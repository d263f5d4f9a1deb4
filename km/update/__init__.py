"""`km update [--check]`: move a km installed by install.sh or install.ps1 to the newest release
the way that installer does (`release` is the sans-IO part: versions, archive names, SHA256SUMS;
`switch` downloads, verifies and switches install.sh's layout; `windows` switches install.ps1's,
whose launcher is the user PATH of `winpath`; `cli` is the command)."""
