#!/usr/bin/env bash
# Rebuilds a demo model: vocabulary, training (resumable: run it again to continue), checkpoint
# averaging, float16 conversion and dev evaluation. Needs spm_train (Debian's sentencepiece) and
# the corpora under DATA_ROOT (default ../shared/data).
#   DEMO=1 (default): the shipped models/demo, 6 languages <-> English, gettext-mt, on wasm
#     (models/demo-train.json, runs/demo).
#   DEMO=2: demo model 2 in models/demo2, 16 languages <-> English, gettext-mt and libreoffice-mt,
#     on TensorFlow's native kernels (models/demo2-train.json, runs/demo2; builds tfjs-node first
#     with scripts/build-tfjs-node.sh).
# The backend is pinned (TASKMOE_BACKEND) so that a rebuild, and every resumed session of one,
# computes the same steps; set TASKMOE_BACKEND to override.
# STEPS sets where training stops (default: the model's planned last step); AVERAGE how many
# weights are averaged into the shipped model: the final ones and the last AVERAGE-1 snapshots
# (train.snapshotEvery) before them (1: the final weights alone); WORKERS the trainer's threads.
# INIT (a model directory) and INIT_STEP start a run that has no training state yet from that
# model's weights at that step, e.g. INIT=models/demo INIT_STEP=4000 STEPS=6000 continues the
# shipped model. NO_EVAL=1 skips the dev evaluation; CONFIG, RUN (the run directory: vocabulary,
# training state, log) and OUT (the model written) replace the defaults, for smoke runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-1}
DATA_ROOT=${DATA_ROOT:-../shared/data}
AVERAGE=${AVERAGE:-3}
case "$DEMO" in
  1)
    DATA=${DATA:-$DATA_ROOT/gettext-mt}
    CONFIG=${CONFIG:-models/demo-train.json} RUN=${RUN:-runs/demo} CKPT=d192 OUT=${OUT:-models/demo}
    VOCAB=spm8k VOCAB_SIZE=8000 SPM_LANGUAGES=(--languages en,de,es,fr,sv,ru,uk)
    TRAIN_DIRS=("$DATA/train") DEV_DIRS=("$DATA/dev")
    STEPS=${STEPS:-12600} WORKERS=${WORKERS:-2}
    export TASKMOE_BACKEND=${TASKMOE_BACKEND:-wasm}
    ;;
  2)
    CONFIG=${CONFIG:-models/demo2-train.json} RUN=${RUN:-runs/demo2} CKPT=d192 OUT=${OUT:-models/demo2}
    # 16 scripts' worth of pieces; every covered character takes a slot, so CJK needs the room.
    VOCAB=spm16k VOCAB_SIZE=16000 SPM_LANGUAGES=()
    TRAIN_DIRS=("$DATA_ROOT/gettext-mt/train" "$DATA_ROOT/libreoffice-mt/train")
    DEV_DIRS=("$DATA_ROOT/gettext-mt/dev" "$DATA_ROOT/libreoffice-mt/dev")
    STEPS=${STEPS:-20000} WORKERS=${WORKERS:-1}
    export TASKMOE_BACKEND=${TASKMOE_BACKEND:-node}
    [ "$TASKMOE_BACKEND" = node ] && bash scripts/build-tfjs-node.sh
    ;;
  *) echo "build-demo: DEMO must be 1 or 2, got $DEMO" >&2; exit 2 ;;
esac
taskmoe() { node bin/taskmoe.js "$@"; }
[ -f dist/cli/main.js ] || npm run build >/dev/null
DATA_ARGS=()
for dir in "${TRAIN_DIRS[@]}"; do DATA_ARGS+=(--data "$dir"); done
mkdir -p "$RUN"
if [ ! -f "$RUN/$VOCAB.model" ] && [ -n "${INIT:-}" ]; then
  # A model to continue from brings its own vocabulary.
  cp "$INIT/tokenizer.model" "$RUN/$VOCAB.model"
  cp "$INIT/tokenizer.vocab" "$RUN/$VOCAB.vocab" 2>/dev/null || true
elif [ ! -f "$RUN/$VOCAB.model" ]; then
  taskmoe tokenizer train "${DATA_ARGS[@]}" --vocab-size "$VOCAB_SIZE" "${SPM_LANGUAGES[@]}" \
    --sentences-per-language 20000 --seed 1 --out "$RUN/$VOCAB.model"
fi
INIT_ARGS=()
[ -n "${INIT:-}" ] && INIT_ARGS=(--init "$INIT" --init-step "${INIT_STEP:-0}")
taskmoe train --config "$CONFIG" "${DATA_ARGS[@]}" --out "$RUN/$CKPT" --steps "$STEPS" --workers "$WORKERS" --resume "${INIT_ARGS[@]}" 2>&1 | tee -a "$RUN/$CKPT.log"
BEFORE=
# (Not with AVERAGE=1: `tail -n 0` closes the pipe early, and pipefail turns that into a failure.)
[ "$AVERAGE" -gt 1 ] && BEFORE=$(ls -d "$RUN/$CKPT"/snapshots/step-* 2>/dev/null | sort -t- -k2 -n | awk -F- -v s="$STEPS" '$NF < s' | tail -n "$((AVERAGE - 1))")
SNAPSHOTS="$BEFORE $RUN/$CKPT/latest/model"
# The model card is written by hand; the checkpoint writers replace the whole directory.
CARD=$(mktemp)
cp "$OUT/README.md" "$CARD" 2>/dev/null || true
rm -rf "$OUT"
if [ "$AVERAGE" -gt 1 ]; then
  [ "$(echo "$SNAPSHOTS" | wc -w)" -eq "$AVERAGE" ] || { echo "build-demo: fewer than $((AVERAGE - 1)) snapshots before step $STEPS" >&2; exit 1; }
  # shellcheck disable=SC2086
  taskmoe average --out "$OUT" --dtype float16 $SNAPSHOTS
else
  taskmoe convert --model "$RUN/$CKPT/latest/model" --out "$OUT" --dtype float16
fi
[ -s "$CARD" ] && cp "$CARD" "$OUT/README.md"
rm -f "$CARD"
[ "${NO_EVAL:-0}" = 1 ] && exit 0
taskmoe eval --model "$OUT" --data "${DEV_DIRS[0]}" --batch-size 64 --json "$RUN/eval.json"
for dev in "${DEV_DIRS[@]:1}"; do
  taskmoe eval --model "$OUT" --data "$dev" --batch-size 64 --json "$RUN/eval-$(basename "$(dirname "$dev")").json"
done
