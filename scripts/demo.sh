#!/usr/bin/env bash
# The README's main job: serve the bundled demo model (a tiny Qwen3 trained on
# Shakespeare) and ask it, through the OpenAI API, to continue "ROMEO:".
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-30000}
build/nativelm serve --port "$port" --log-level warn &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $server 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
  sleep 0.2
done
curl -sS "http://127.0.0.1:$port/v1/completions" -H "Content-Type: application/json" \
  -d '{"model": "demo", "prompt": "ROMEO:", "max_tokens": 64, "temperature": 0.8, "seed": 1}'
echo
