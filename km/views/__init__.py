"""The terminal views of captured traffic: `km tail`, `km sessions`, `km show`.

exchange.py    events paired into exchange lines (sans-IO)
fmt.py         times, sizes, durations, columns fitted to a terminal (sans-IO)
render.py      a line as plain text, rich Text or JSON
spool_read.py  the spool, read-only, through the filter language's SQL
api_read.py    the same from the Kilometers API (`--api`)
tail.py        following the spool live
sessions.py    the session list and one session's timeline
cli.py         the commands' arguments and exit codes
"""
