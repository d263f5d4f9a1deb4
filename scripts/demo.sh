#!/usr/bin/env bash
# The main job on the embedded default: a local Kilometers API (`km serve`, SQLite), real MCP
# servers driven through `km` by the official MCP client, delivery, then what km and the API saw.
# Only km's own output is shown; the API's log and the servers' stderr go to .dev/ (shown when
# something fails).
set -euo pipefail
cd "$(dirname "$0")/.."
KM=.venv/bin/km
PORT=${KM_DEMO_PORT:-8477}
DB=${KM_DEMO_DB:-$(.venv/bin/python -c 'import platformdirs,os;print(os.path.join(platformdirs.user_data_dir("km",appauthor=False),"server.db"))')}
LOGS=.dev
mkdir -p "$LOGS"
SERVE_LOG=$LOGS/demo-serve.log
export KM_DEMO_SERVER_LOG=$LOGS/demo-servers.log   # the MCP servers' stderr (scripts/demo_session.py)

failed() {
  echo "demo: $1 failed; its log ($2):" >&2
  tail -n 40 "$2" >&2
  exit 1
}

"$KM" serve --port "$PORT" --database-url "sqlite:///$DB" 2>"$SERVE_LOG" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  kill -0 $SERVE 2>/dev/null || failed "km serve" "$SERVE_LOG"
  sleep 0.1
done
KEY=$("$KM" serve keys create --account demo --label demo --database-url "sqlite:///$DB" 2>>"$SERVE_LOG" | tail -n 1)
export KM_API_URL="http://127.0.0.1:$PORT" KM_API_KEY="$KEY"   # never on a command line
echo "== a local Kilometers API: km serve on http://127.0.0.1:$PORT (SQLite $DB) =="

echo "== an MCP session through km =="
.venv/bin/python scripts/demo_session.py || failed "the MCP session" "$KM_DEMO_SERVER_LOG"
"$KM" sync -q
echo "== km status =="
"$KM" status
echo "== km tools: each server's tools, their context tokens, drift and findings =="
"$KM" tools
echo "== the API's per-server, per-method, per-tool stats (GET /api/v1/stats) =="
curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/v1/stats" |
  .venv/bin/python scripts/demo_stats.py
cat <<NEXT
== what next ==
  km setup           put km in front of every stdio MCP server of Claude Desktop, Claude Code,
                     Cursor, VS Code and Windsurf (km setup --undo takes it out again, exactly)
  km tools           the tools each server offers, as captured
  km tail            follow the messages as km captures them
  km status          what has been captured, and its delivery
  km doctor          check PATH, spool, API, key and clients; prints fixes
(here km is $KM; the API above stops with this demo)
NEXT
