#!/usr/bin/env bash
# The routing study (docs/routing-study.md): five small models of one active size, one training
# budget each (models/routing-study/*.json: d128, 2+2 layers, 8 experts top-2 in every 2nd layer,
# 300 steps of 1024-token batches), de, fr, ru, zh <-> en from gettext-mt's train/, then dev
# BLEU/chrF, parameters, the extracted decoder and engine throughput of each.
# Resumable: every stage skips what runs/routing-study/ already holds (training continues from its
# last checkpoint), so run it again after an interruption. Logs go to runs/routing-study/*.log.
#   KINDS      the routings to run (default: all five)
#   PARALLEL   trainings at once (default 2); THREADS TensorFlow intra-op threads each (default 2/PARALLEL)
#   DATA_ROOT  the corpora (default ../shared/data, else ../../shared/data from a worktree)
#   DEV_SENTENCES  dev sentences per direction scored (default 200: the first N of dev/en-XX.tsv)
#   STAGES     any of train,eval,size,bench (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
KINDS=${KINDS:-dense token-token token-target token-pair sentence-target}
PARALLEL=${PARALLEL:-2}
DEV_SENTENCES=${DEV_SENTENCES:-200}
STAGES=${STAGES:-train,eval,size,bench}
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

# One shared vocabulary for all five, trained once.
if [ ! -f "$RUN/spm4k.model" ]; then
  taskmoe tokenizer train --data "$DATA_ROOT/gettext-mt/train" --vocab-size 4000 --languages "en,$LANGS" \
    --sentences-per-language 10000 --seed 1 --out "$RUN/spm4k.model" 2>&1 | tee "$RUN/tokenizer.log"
fi

steps_of() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).train.steps)' "models/routing-study/$1.json"; }
trained() { [ -f "$RUN/$1/latest/trainer.json" ] && node -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1])).step >= +process.argv[2] ? 0 : 1)' "$RUN/$1/latest/trainer.json" "$(steps_of "$1")"; }
train() { # kind: trains (or continues) one model at nice 19, its log in $RUN/kind.log
  local kind=$1
  trained "$kind" && return
  { echo "start $(date -u +%FT%TZ)"
    /usr/bin/time -f "time: %e s wall, %U s user, %S s sys" env TF_NUM_INTRAOP_THREADS="$THREADS" \
      nice -n 19 node bin/taskmoe.js train --config "models/routing-study/$kind.json" \
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
