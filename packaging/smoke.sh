#!/usr/bin/env bash
# Smoke test of one km executable (a build, or .venv/bin/km): its version, a real MCP session
# through it with capture, `km status --json`, then `km serve` (embedded SQLite), a key, and
# `km sync` delivering the captured events. Everything in a temporary directory.
#   packaging/smoke.sh <km executable>
#   KM_SMOKE_SERVER="mcp-server-time"  the MCP server to run through km (default: cat, which
#                                      answers the initialize request with itself)
# Runs on Linux, macOS (bash 3.2) and Git Bash on Windows. Exits non-zero on the first failure.
set -euo pipefail

KM=${1:?usage: packaging/smoke.sh <km executable>}
SERVER=${KM_SMOKE_SERVER:-cat}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/km-smoke.XXXXXX")
SERVE_PID=
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
step() { echo "smoke: $*"; }

# Nothing of the user's: a spool, a config and a data dir of our own.
for v in $(env | sed -n 's/^\(KM_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export KM_SPOOL="$TMP/spool.db" KM_CONFIG="$TMP/config.toml" KM_GRACE=0.5
export XDG_DATA_HOME="$TMP/data" XDG_CONFIG_HOME="$TMP/config"

want_version="km $(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$HERE/../km/__init__.py" 2>/dev/null || true)"
got_version=$("$KM" --version | tr -d '\r')
step "version: $got_version"
case "$got_version" in "km "[0-9]*) ;; *) fail "km --version printed '$got_version'" ;; esac
if [ "$want_version" != "km " ] && [ "$got_version" != "$want_version" ]; then
  fail "km --version is '$got_version', the source says '$want_version'"
fi

step "an MCP session through km: $SERVER"
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"km-smoke","version":"1"}}}'
NOTE='{"jsonrpc":"2.0","method":"notifications/initialized"}'
LIST='{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
# Keep stdin open until both answers came back, as a client does, then close it.
# shellcheck disable=SC2086 # KM_SMOKE_SERVER may carry arguments
# shellcheck disable=SC2094 # the producer polls the file km writes: that is the point
{
  printf '%s\n%s\n%s\n' "$INIT" "$NOTE" "$LIST"
  for _ in $(seq 1 100); do grep -q '"id":2' "$TMP/out.jsonl" 2>/dev/null && break; sleep 0.1; done
} |
  "$KM" --name smoke-server -- $SERVER >"$TMP/out.jsonl" 2>"$TMP/err.log" ||
  fail "km exited non-zero: $(tail -n 3 "$TMP/err.log")"
grep -q '"id":1' "$TMP/out.jsonl" || fail "no answer to initialize came back through km"
grep -q '"id":2' "$TMP/out.jsonl" || fail "no answer to tools/list came back through km"

step "km status --json"
events=0
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  "$KM" status --json >"$TMP/status.json" || fail "km status --json failed"
  events=$(sed -n 's/^ *"events_total": \([0-9]*\).*/\1/p' "$TMP/status.json" | head -n 1)
  [ "${events:-0}" -ge 3 ] && break
  sleep 0.25
done
[ "${events:-0}" -ge 3 ] || fail "km status shows ${events:-no} events, want at least 3"
grep -q '"smoke-server"' "$TMP/status.json" || fail "km status does not name the server smoke-server"
step "captured $events events"
"$KM" status >/dev/null || fail "km status (tables) failed"

step "km serve (embedded SQLite), a key, km sync"
DB="sqlite:///$TMP/server.db"
"$KM" serve --port 0 --database-url "$DB" 2>"$TMP/serve.log" &
SERVE_PID=$!
URL=
for _ in $(seq 1 100); do
  URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$TMP/serve.log" | head -n 1)
  [ -n "$URL" ] && break
  kill -0 "$SERVE_PID" 2>/dev/null || fail "km serve died: $(tail -n 5 "$TMP/serve.log")"
  sleep 0.1
done
[ -n "$URL" ] || fail "km serve did not say where it listens: $(tail -n 5 "$TMP/serve.log")"
KM_API_KEY=$("$KM" serve keys create --account smoke --database-url "$DB" 2>/dev/null | tail -n 1 | tr -d '\r')
export KM_API_URL="$URL" KM_API_KEY
"$KM" sync -q 2>/dev/null || fail "km sync failed"
"$KM" status --json >"$TMP/status.json" || fail "km status --json failed"
sent=$(sed -n 's/^ *"sent": \([0-9]*\).*/\1/p' "$TMP/status.json" | head -n 1)
[ "${sent:-0}" -ge "$events" ] || fail "km status shows ${sent:-no} events sent, want $events"
step "delivered $sent events to $URL"
step "ok: $KM"
