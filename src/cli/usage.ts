// `taskmoe --help`: every subcommand, the environment, and each server setting with its default.
import { DEFAULT_MODEL_DIR } from '../translator/index.ts';
import { SETTINGS } from '../server/settings.ts';
import { IMPORT_USAGE } from '../import/command.ts';

export const USAGE = `taskmoe: serve and run task-routed Mixture-of-Experts translation models

Usage:
  taskmoe serve [--model DIR] [--port N] [other settings below]
      Serves POST /translate (LibreTranslate-compatible) and /languages, /healthz, /readyz, /metrics, /info.
  taskmoe translate [--model DIR] --source xx --target yy [--beam N] [--n-best N] [--max-length N] [TEXT...]
      Translates TEXT, or else each line of stdin (one translation per line, in order).
      Without --model it uses the built-in demo model (${DEFAULT_MODEL_DIR}).
  taskmoe init --config CFG.json --tokenizer SPM.model --out DIR [--seed N] [--dtype float32|float16]
      Writes a randomly initialised checkpoint (for tests and benchmarks).
  taskmoe extract --model DIR --source xx --target yy --out DIR2 [--dtype float32|float16]
      Writes the sub-network serving xx->yy as a checkpoint of its own.
  taskmoe export --onnx --model DIR --out DIR2 [--source xx --target yy]
      Writes the model (or the sub-network serving xx->yy) as ONNX graphs with a README of their inputs and outputs.
  taskmoe extract --by-usage --calibration FILE --keep K --model DIR --source xx --target yy --out DIR2
      Token-routed MoE layers keep the K experts with the most gate mass over FILE's sources (one a line, or TSV).
${IMPORT_USAGE}  taskmoe convert --model DIR --out DIR2 --dtype float32|float16
      Rewrites a checkpoint with its weights stored as float32 or float16.
  taskmoe average --out DIR [--dtype float32|float16] MODEL_DIR...
      Writes the element-wise mean of checkpoints of one model config (checkpoint averaging).
  taskmoe inspect DIR [--json]
      Parameter counts and bytes per component, and the size of every task's sub-network.
  taskmoe bench engine [--json FILE] [--quick] [--configs wmt32,e128 (or study128,study128-dense)] [--batch 1,8] [--variants token,task-extracted] [--reps N] [--onnx [--threads 1,2]]
      Decoding throughput of dense, token, task and task-extracted models (random weights); --onnx: ONNX Runtime beside wasm.
  taskmoe bench server [--model DIR] [--data DIR] [--seconds N] [--rounds N] [--concurrency N] [--workers N] [--workers-only] [--settings 'FLAGS;FLAGS'] [--json FILE]
      Loads a real server: batching on/off, one pair/all pairs with a small cache, server/engine overhead,
      one pair at saturation on 1 and N workers (default N: one per core; --workers-only runs just that);
      --settings: those serve flag sets side by side on one pair ("default": none), at saturation and one in flight.
  taskmoe bench faults [--model DIR] [--workers N]
      Fault probe on loopback (issue 12's Measures): statuses per class, wrong answers, probe latency under a heavy request, RSS, SIGTERM and crash recovery times.
  taskmoe bench train [--config CFG.json] [--steps N] [--batch-tokens N] [--vocab N] [--d-model N] [--workers N] [--json FILE] [--profile]
      Trainer tokens/s and achieved FLOP/s against the 2-D matMul ceiling, on wasm (1 and N workers) and
      native tfjs-node (2 threads) at CFG's shape (default models/demo-train.json); with TASKMOE_BACKEND set, that backend only,
      and --profile prints one more step's time by kernel.
  taskmoe train --config CFG.json [--data DIR]... --out DIR [--steps N] [--resume] [--workers N] [--init MODEL_DIR [--init-step N]]
      Trains a model (config.json fields plus a "train" section); checkpoints go to DIR/latest/model.
      Several --data DIRs (or a "train.data" list in CFG) read as one corpus; temperature sampling spans their union.
      --workers N splits each batch over N worker threads (default: train.workers, 1).
      Without TASKMOE_BACKEND, where tfjs-node and wasm both load, a few timed steps pick the faster (and its workers).
      Ctrl-C saves a checkpoint before exiting; --resume continues exactly where it stopped.
      --init starts from a model checkpoint's weights (fresh optimizer) at step --init-step (default 0).
  taskmoe eval [--model DIR] --data DIR [--json FILE] [--beam N] [--batch-size N] [--languages de,fr]
      BLEU and chrF per direction on a corpus of en-XX.tsv files, next to the copy-the-source baseline.
  taskmoe keys add [--req-per-minute N] [--chars-per-day N] [--name TEXT] | keys list | keys remove KEY  [--data-dir DIR]
      Manages the API keys (and their own limits) of the server using the same --data-dir / TASKMOE_DATA_DIR.
  taskmoe tokenizer train --data DIR [--data DIR2]... --vocab-size N --out FILE.model [--languages en,de,...] [--sentences-per-language N] [--character-coverage F]
      Trains a shared SentencePiece vocabulary with spm_train (Debian package "sentencepiece").

Environment:
  TASKMOE_BACKEND   gpu | node | wasm | cpu: the TensorFlow.js backend (default: the first that loads); onnx: serve on ONNX Runtime (the default without a GPU)
  TASKMOE_ONNX_THREADS  intra-op threads of each ONNX Runtime session (default 1)

Server settings (flag / environment variable, default):
${SETTINGS.map((s) => `  --${s.flag} / ${s.env}: ${s.help}${s.help.includes('(default') ? '' : ` (default: ${JSON.stringify(s.default())})`}`).join('\n')}
`;
