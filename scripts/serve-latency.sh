#!/usr/bin/env bash
# How fast a model serves on this machine: seconds from `taskmoe serve` (what `npm start` runs)
# to /readyz answering 200, then the median and worst wall time of single-sentence POST /translate
# requests, one at a time, over the model's en->XX pairs (each sentence once per pair, after one
# untimed warm-up request per pair).
#   serve-latency.sh [MODEL_DIR] [PORT]   (default: the shipped demo model, port 18080)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/demo}
PORT=${2:-18080}
SENTENCES=("Save changes before closing?" "Could not open the file." "Check your internet connection and try again." "Settings have been saved.")
[ -f dist/cli/main.js ] || npm run build >/dev/null
mkdir -p .tmp
start=$(date +%s.%N)
node bin/taskmoe.js serve --model "$MODEL" --port "$PORT" >/dev/null 2>.tmp/serve-latency.log &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f .tmp/serve-latency.log' EXIT
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat .tmp/serve-latency.log >&2; exit 1; }
  sleep 0.1
done
ready=$(echo "$(date +%s.%N) - $start" | bc)
TARGETS=$(node -e 'const c = require(process.argv[1]); console.log(c.pairs.filter((p) => p.startsWith("en-")).map((p) => p.slice(3)).join(" "))' "$PWD/$MODEL/config.json")
times=()
for xx in $TARGETS; do
  post() { curl -sf -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' \
    -d "{\"q\": \"$1\", \"source\": \"en\", \"target\": \"$xx\"}" "http://127.0.0.1:$PORT/translate"; }
  post "Hello" >/dev/null
  for s in "${SENTENCES[@]}"; do times+=("$(post "$s")"); done
done
printf '%s\n' "${times[@]}" | sort -n | awk -v ready="$ready" -v model="$MODEL" '
  { t[NR] = $1 } END {
    median = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
    printf "%s: ready in %.1f s; single-sentence latency median %.0f ms, max %.0f ms over %d requests\n", model, ready, 1000 * median, 1000 * t[NR], NR
  }'
