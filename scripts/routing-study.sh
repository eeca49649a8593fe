#!/usr/bin/env bash
# The routing study (docs/routing-study.md): five small models of one active size, one training
# budget each (models/routing-study/*.json: d128, 2+2 layers, 8 experts top-2 in every 2nd layer,
# 1,000 steps of 1024-token batches, cooldown over the last 200), de, fr, ru, zh <-> en from gettext-mt's
# train/, then dev BLEU/chrF, parameters, the extracted decoder and engine throughput of each.
# Resumable: every stage skips what runs/routing-study/ already holds (training continues from its
# last checkpoint), so run it again after an interruption. Logs go to runs/routing-study/*.log.
#   KINDS      the routings to run (default: all five)
#   PARALLEL   trainings at once (default 2); THREADS TensorFlow intra-op threads each (default 2/PARALLEL)
#   NICE       the trainings' nice level (default 12)
#   DATA_ROOT  the corpora (default ../shared/data, else ../../shared/data from a worktree)
#   DEV_SENTENCES  dev sentences per direction scored (default 200, evenly spaced)
#   STAGES     any of train,eval,size,bench,report (default all)
#   BENCH      the command a benchmark runs through (default /work/wt/bench.sh where it exists: it holds
#              the shared benchmark lock and pauses training runs; empty: none)
set -euo pipefail
cd "$(dirname "$0")/.."
KINDS=${KINDS:-dense token-token token-target token-pair sentence-target}
PARALLEL=${PARALLEL:-2}
DEV_SENTENCES=${DEV_SENTENCES:-200}
STAGES=${STAGES:-train,eval,size,bench,report}
LANGS=de,fr,ru,zh
if [ -z "${DATA_ROOT:-}" ]; then
  DATA_ROOT=../shared/data
  [ -d "$DATA_ROOT" ] || DATA_ROOT=../../shared/data
fi
RUN=runs/routing-study
mkdir -p "$RUN"
# The training backend: the faster of `taskmoe bench train` at this shape (native, 2.06x wasm).
export TASKMOE_BACKEND=${TASKMOE_BACKEND:-node}
[ "$TASKMOE_BACKEND" = node ] && bash scripts/build-tfjs-node.sh >/dev/null
[ -f dist/cli/main.js ] || npm run build >/dev/null
taskmoe() { node bin/taskmoe.js "$@"; }
stage() { [[ ",$STAGES," == *",$1,"* ]]; }
[ -x /work/wt/bench.sh ] && BENCH=${BENCH-/work/wt/bench.sh}
benched() { if [ -n "${BENCH:-}" ]; then "$BENCH" "$@"; else "$@"; fi; }

# One shared vocabulary for all five, trained once.
if [ ! -f "$RUN/spm4k.model" ]; then
  taskmoe tokenizer train --data "$DATA_ROOT/gettext-mt/train" --vocab-size 4000 --languages "en,$LANGS" \
    --sentences-per-language 10000 --seed 1 --out "$RUN/spm4k.model" 2>&1 | tee "$RUN/tokenizer.log"
fi

# The step a training ends at: train.stopAt (the budget) where set, else train.steps.
steps_of() { node -e 'const t = JSON.parse(require("fs").readFileSync(process.argv[1])).train; console.log(t.stopAt || t.steps)' "models/routing-study/$1.json"; }
trained() { [ -f "$RUN/$1/latest/trainer.json" ] && node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1])).step >= +process.argv[2] ? 0 : 1)' "$RUN/$1/latest/trainer.json" "$(steps_of "$1")"; }
train() { # kind: trains (or continues) one model at nice $NICE, its log in $RUN/kind.log
  local kind=$1
  trained "$kind" && return
  { echo "start $(date -u +%FT%TZ)"
    /usr/bin/time -f "time: %e s wall, %U s user, %S s sys" env TF_NUM_INTRAOP_THREADS="$THREADS" \
      nice -n "${NICE:-12}" node bin/taskmoe.js train --config "models/routing-study/$kind.json" \
      --data "$DATA_ROOT/gettext-mt/train" --out "$RUN/$kind" --resume
    echo "end $(date -u +%FT%TZ)"; } >>"$RUN/$kind.log" 2>&1
}
if stage train; then
  THREADS=${THREADS:-$((2 / PARALLEL))}; [ "$THREADS" -ge 1 ] || THREADS=1
  for kind in $KINDS; do
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
    train "$kind" &
  done
  wait
  for kind in $KINDS; do trained "$kind" || { echo "routing-study: $kind did not finish; see $RUN/$kind.log" >&2; exit 1; }; done
fi

# A fixed dev subset: DEV_SENTENCES pairs per direction, evenly spaced among those that fit the
# models (64 tokens with the language tag and end marker: 62 pieces; scripts/routing-dev-subset.ts).
DEV="$RUN/dev$DEV_SENTENCES"
if [ ! -d "$DEV" ]; then
  FILES=()
  for l in ${LANGS//,/ }; do FILES+=("$DATA_ROOT/gettext-mt/dev/en-$l.tsv"); done
  node --import tsx scripts/routing-dev-subset.ts "$RUN/spm4k.model" 62 "$DEV_SENTENCES" "$DEV.tmp" "${FILES[@]}"
  mv "$DEV.tmp" "$DEV"
fi

if stage eval; then
  for kind in $KINDS; do
    [ -f "$RUN/$kind/eval.json" ] && continue
    nice -n 10 node bin/taskmoe.js eval --model "$RUN/$kind/latest/model" --data "$DEV" --languages "$LANGS" \
      --batch-size 64 --json "$RUN/$kind/eval.json" --hypotheses "$RUN/$kind/hyp" 2>&1 | tee "$RUN/$kind.eval.log" | grep -v '^evaluate'
  done
fi

if stage size; then
  for kind in $KINDS; do
    node bin/taskmoe.js inspect "$RUN/$kind/latest/model" --json >"$RUN/$kind/inspect.json" 2>/dev/null
    # The en-de sub-network where the routing has one (task-routed decoders); the log says which.
    rm -rf "$RUN/$kind/extract-en-de"
    if node bin/taskmoe.js extract --model "$RUN/$kind/latest/model" --source en --target de \
      --out "$RUN/$kind/extract-en-de" >"$RUN/$kind/extract.log" 2>&1; then
      node bin/taskmoe.js inspect "$RUN/$kind/extract-en-de" --json >"$RUN/$kind/extract-inspect.json" 2>/dev/null
    else
      rm -f "$RUN/$kind/extract-inspect.json"
    fi
    tail -n 1 "$RUN/$kind/extract.log"
  done
fi

# Decoding throughput of the study's shape (random weights, 32 source and 32 target tokens, greedy),
# at batch 1 and 32: tfjs-wasm for every routing the engine benchmark has (study128: dense at
# dFF 512, Token/Token, Token/Target whole and extracted; study128-dense: the study's dense model),
# and ONNX Runtime (what CPU serving uses) for the dense model and the extracted sub-network.
if stage bench; then
  [ -f "$RUN/bench-engine-wasm.json" ] || TASKMOE_BACKEND=wasm benched node bin/taskmoe.js bench engine \
    --configs study128,study128-dense --batch 1,32 --json "$RUN/bench-engine-wasm.json" >"$RUN/bench-engine-wasm.log" 2>&1
  [ -f "$RUN/bench-engine-onnx.json" ] || TASKMOE_BACKEND=wasm benched node bin/taskmoe.js bench engine --onnx \
    --configs study128,study128-dense --variants dense,task-extracted --batch 1,32 --threads 1 \
    --json "$RUN/bench-engine-onnx.json" >"$RUN/bench-engine-onnx.log" 2>&1
fi

# The tables (runs/routing-study/tables.md, pasted into docs/routing-study.md), the plot, and the
# paired bootstrap of the dev BLEU differences.
if stage report; then
  node --import tsx scripts/routing-plot.ts "$RUN" docs/routing-study.svg | tee "$RUN/tables.md"
  node --import tsx scripts/routing-bootstrap.ts "$RUN" | tee -a "$RUN/tables.md"
fi
