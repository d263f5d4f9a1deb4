#!/usr/bin/env bash
# The main job on the embedded default: a local Kilometers API (`km serve`, SQLite), real MCP
# servers driven through `km` by the official MCP client, delivery, then what km and the API saw.
set -euo pipefail
cd "$(dirname "$0")/.."
KM=.venv/bin/km
PORT=${KM_DEMO_PORT:-8477}
DB=${KM_DEMO_DB:-$(.venv/bin/python -c 'import platformdirs,os;print(os.path.join(platformdirs.user_data_dir("km",appauthor=False),"server.db"))')}

"$KM" serve --port "$PORT" --database-url "sqlite:///$DB" 2>/tmp/km-demo-serve.log &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  kill -0 $SERVE 2>/dev/null || { echo "demo: km serve failed:"; cat /tmp/km-demo-serve.log; exit 1; } >&2
  sleep 0.1
done
KEY=$("$KM" serve keys create --account demo --label demo --database-url "sqlite:///$DB" | tail -n 1)
export KM_API_URL="http://127.0.0.1:$PORT" KM_API_KEY="$KEY"   # never on a command line

echo "== an MCP session through km =="
.venv/bin/python scripts/demo_session.py
"$KM" sync -q
echo "== km status =="
"$KM" status
echo "== the API's per-server, per-method stats (GET /api/v1/stats) =="
curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/api/v1/stats" |
  .venv/bin/python -c 'import json,sys
for r in json.load(sys.stdin)["stats"]:
    print("%-24s %-28s count=%-4s errors=%s p50=%sus" % (r["server"], r["method"], r["count"], r["errors"], r["latency_p50_us"]))'
