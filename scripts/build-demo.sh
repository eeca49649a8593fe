#!/usr/bin/env bash
# Rebuilds the demo model in models/demo: vocabulary, training (resumable: run it again to
# continue), checkpoint averaging, float16 conversion and dev evaluation. Needs spm_train (Debian's
# sentencepiece) and ../shared/data/gettext-mt. STEPS sets where training stops (default: the
# shipped model's); AVERAGE how many weights are averaged into the shipped model: the final ones
# and the last AVERAGE-1 snapshots (train.snapshotEvery) before them (1: the final weights alone); WORKERS the trainer's threads. INIT (a
# model directory) and INIT_STEP start a run that has no training state yet from that model's
# weights at that step, e.g. INIT=models/demo INIT_STEP=4000 STEPS=6000 continues the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/gettext-mt}
STEPS=${STEPS:-12600}
WORKERS=${WORKERS:-2}
AVERAGE=${AVERAGE:-3}
RUN=runs/demo
taskmoe() { node bin/taskmoe.js "$@"; }
mkdir -p "$RUN"
if [ ! -f "$RUN/spm8k.model" ] && [ -n "${INIT:-}" ]; then
  # A model to continue from brings its own vocabulary.
  cp "$INIT/tokenizer.model" "$RUN/spm8k.model"
  cp "$INIT/tokenizer.vocab" "$RUN/spm8k.vocab" 2>/dev/null || true
elif [ ! -f "$RUN/spm8k.model" ]; then
  taskmoe tokenizer train --data "$DATA/train" --vocab-size 8000 --languages en,de,es,fr,sv,ru,uk \
    --sentences-per-language 20000 --seed 1 --out "$RUN/spm8k.model"
fi
INIT_ARGS=()
[ -n "${INIT:-}" ] && INIT_ARGS=(--init "$INIT" --init-step "${INIT_STEP:-0}")
taskmoe train --config models/demo-train.json --data "$DATA/train" --out "$RUN/d192" --steps "$STEPS" --workers "$WORKERS" --resume "${INIT_ARGS[@]}" 2>&1 | tee -a "$RUN/d192.log"
BEFORE=$(ls -d "$RUN"/d192/snapshots/step-* 2>/dev/null | sort -t- -k2 -n | awk -F- -v s="$STEPS" '$NF < s' | tail -n "$((AVERAGE - 1))")
SNAPSHOTS="$BEFORE $RUN/d192/latest/model"
# The model card is written by hand; the checkpoint writers replace the whole directory.
CARD=$(mktemp)
cp models/demo/README.md "$CARD" 2>/dev/null || true
rm -rf models/demo
if [ "$AVERAGE" -gt 1 ]; then
  [ "$(echo "$SNAPSHOTS" | wc -w)" -eq "$AVERAGE" ] || { echo "build-demo: fewer than $((AVERAGE - 1)) snapshots before step $STEPS" >&2; exit 1; }
  # shellcheck disable=SC2086
  taskmoe average --out models/demo --dtype float16 $SNAPSHOTS
else
  taskmoe convert --model "$RUN/d192/latest/model" --out models/demo --dtype float16
fi
[ -s "$CARD" ] && cp "$CARD" models/demo/README.md
rm -f "$CARD"
taskmoe eval --model models/demo --data "$DATA/dev" --batch-size 64 --json "$RUN/eval.json"
