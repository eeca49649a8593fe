#!/usr/bin/env bash
# Rebuilds the demo model in models/demo: vocabulary, training (resumable: run it again to
# continue), float16 conversion and dev evaluation. Needs spm_train (Debian's sentencepiece) and
# ../shared/data/gettext-mt. STEPS sets where training stops (default: the shipped model's 2077); WORKERS the
# trainer's threads.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/gettext-mt}
STEPS=${STEPS:-2077}
WORKERS=${WORKERS:-2}
RUN=runs/demo
taskmoe() { node bin/taskmoe.js "$@"; }
mkdir -p "$RUN"
if [ ! -f "$RUN/spm8k.model" ]; then
  taskmoe tokenizer train --data "$DATA/train" --vocab-size 8000 --languages en,de,es,fr,sv,ru,uk \
    --sentences-per-language 20000 --seed 1 --out "$RUN/spm8k.model"
fi
taskmoe train --config models/demo-train.json --data "$DATA/train" --out "$RUN/d192" --steps "$STEPS" --workers "$WORKERS" --resume 2>&1 | tee -a "$RUN/d192.log"
rm -rf models/demo
taskmoe convert --model "$RUN/d192/latest/model" --out models/demo --dtype float16
taskmoe eval --model models/demo --data "$DATA/dev" --batch-size 64 --json "$RUN/eval.json"
