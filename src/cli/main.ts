// The `taskmoe` command: one handler per subcommand, each parsing its own flags.
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { initBackend } from '../backend/index.ts';
import { averageCheckpoints } from '../models/average.ts';
import { CheckpointReader, writeCheckpoint } from '../models/checkpoint.ts';
import { parseConfig } from '../models/config.ts';
import { initWeights } from '../models/init.ts';
import { inspectModel } from '../models/inspect.ts';
import { verifyCheckpoint } from '../models/verify.ts';
import { Seq2Seq } from '../models/model.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { trainTokenizer } from '../tokenizer/train.ts';
import { DEFAULT_MODEL_DIR, Translator } from '../translator/index.ts';
import { translateLines } from '../text/translate-lines.ts';
import { SETTINGS, SettingsError, resolveSettings } from '../server/settings.ts';
import { serve } from '../server/serve.ts';
import { train } from '../train/index.ts';
import { evaluate, formatEvaluation } from '../eval/evaluate.ts';
import { IMPORT_USAGE, importCommand } from '../import/command.ts';
import { extractByUsage } from './extract-usage.ts';
import { UsageError, dtypeFlag, listFlag, nonNegativeInt, parse, positiveInt, required } from './flags.ts';

const USAGE = `taskmoe: serve and run task-routed Mixture-of-Experts translation models

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
  taskmoe bench engine [--json FILE] [--quick] [--configs wmt32,e128] [--batch 1,8] [--variants token,task-extracted] [--reps N] [--onnx [--threads 1,2]]
      Decoding throughput of dense, token, task and task-extracted models (random weights); --onnx: ONNX Runtime beside wasm.
  taskmoe bench server [--model DIR] [--data DIR] [--seconds N] [--rounds N] [--concurrency N] [--workers N] [--workers-only] [--json FILE]
      Loads a real server: batching on/off, one pair/all pairs with a small cache, server/engine overhead,
      one pair at saturation on 1 and N workers (default N: one per core; --workers-only runs just that).
  taskmoe bench faults [--model DIR] [--workers N]
      Fault probe on loopback (issue 12's Measures): statuses per class, wrong answers, probe latency under a heavy request, RSS, SIGTERM and crash recovery times.
  taskmoe bench train [--config CFG.json] [--steps N] [--batch-tokens N] [--vocab N] [--d-model N] [--workers N] [--json FILE]
      Trainer tokens/s and achieved FLOP/s against the 2-D matMul ceiling, on wasm (1 and N workers) and
      native tfjs-node (2 threads) at CFG's shape (default models/demo-train.json); with TASKMOE_BACKEND set, that backend only.
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

const log = (msg: string) => console.error(msg);

async function cmdInit(args: string[]): Promise<number> {
  const { flags } = parse(args, { config: { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, dtype: { type: 'string' } });
  const configPath = required(flags, 'config');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${configPath}: ${(err as Error).message}`);
  }
  const cfg = parseConfig(raw, configPath);
  const tokenizerPath = required(flags, 'tokenizer');
  const tokenizer = await Tokenizer.load(tokenizerPath);
  tokenizer.checkServes(cfg, configPath);
  await initBackend({ log });
  const weights = initWeights(cfg, positiveInt(flags, 'seed') ?? 1);
  const out = required(flags, 'out');
  await writeCheckpoint(out, cfg, weights, tokenizerPath, dtypeFlag(flags));
  for (const t of weights.values()) t.dispose();
  log(`wrote ${out}`);
  return 0;
}

async function cmdExtract(args: string[]): Promise<number> {
  const usage = { 'by-usage': { type: 'boolean' }, calibration: { type: 'string' }, keep: { type: 'string' } } as const;
  const { flags } = parse(args, { model: { type: 'string' }, source: { type: 'string' }, target: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' }, ...usage });
  if (flags['by-usage']) {
    const o = { model: required(flags, 'model'), source: required(flags, 'source'), target: required(flags, 'target'), out: required(flags, 'out') };
    await initBackend({ log });
    return extractByUsage({ ...o, calibration: required(flags, 'calibration'), keep: Number(required(flags, 'keep')), dtype: dtypeFlag(flags) }, log);
  }
  const reader = await CheckpointReader.open(required(flags, 'model'));
  await verifyCheckpoint(reader, log);
  const dir = { source: required(flags, 'source'), target: required(flags, 'target') };
  const out = required(flags, 'out');
  await initBackend({ log });
  const sub = await Seq2Seq.loadSubnetwork(reader, dir);
  try {
    await writeCheckpoint(out, sub.config, sub.weights, reader.tokenizerPath, dtypeFlag(flags) ?? reader.dtype, reader.extraFiles);
  } finally {
    sub.dispose();
  }
  const before = inspectModel(reader).params;
  const after = inspectModel(await CheckpointReader.open(out)).params;
  log(`wrote ${out}: decoder ${before.decoder} -> ${after.decoder} parameters, encoder ${before.encoder} -> ${after.encoder}, serving ${sub.config.pairs.join(', ')}`);
  return 0;
}

async function cmdConvert(args: string[]): Promise<number> {
  const { flags } = parse(args, { model: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' } });
  const reader = await CheckpointReader.open(required(flags, 'model'));
  await verifyCheckpoint(reader, log);
  const out = required(flags, 'out');
  const dtype = dtypeFlag(flags);
  if (dtype === undefined) throw new UsageError('--dtype is required (float32 or float16)');
  await initBackend({ log });
  const weights = await reader.read(reader.shapes.keys());
  try {
    await writeCheckpoint(out, reader.config, weights, reader.tokenizerPath, dtype, reader.extraFiles);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
  log(`wrote ${out} (${dtype}, ${(inspectModel(await CheckpointReader.open(out)).bytes / 1024 / 1024).toFixed(1)} MiB of weights)`);
  return 0;
}

async function cmdAverage(args: string[]): Promise<number> {
  const { flags, positionals } = parse(args, { out: { type: 'string' }, dtype: { type: 'string' } }, true);
  const out = required(flags, 'out');
  if (positionals.length === 0) throw new UsageError('average takes the checkpoint directories to average');
  await initBackend({ log });
  await averageCheckpoints(positionals, out, dtypeFlag(flags), log);
  log(`wrote ${out}: the mean of ${positionals.length} checkpoints`);
  return 0;
}

async function cmdInspect(args: string[]): Promise<number> {
  const { flags, positionals } = parse(args, { json: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('inspect takes one checkpoint directory');
  const report = inspectModel(await CheckpointReader.open(positionals[0]));
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const p = report.params;
  console.log(`routing ${report.routing.encoder}/${report.routing.decoder}, ${report.moe.numExperts} experts, top-${report.moe.topK}, every ${report.moe.every} layers${report.extracted ? `, extracted for ${JSON.stringify(report.extracted)}` : ''}`);
  console.log(`parameters: total ${p.total}, encoder ${p.encoder}, decoder ${p.decoder}, embeddings ${p.embeddings}`);
  console.log(`weights on disk: ${mb(report.bytes)} (${report.dtype})`);
  console.log('sub-networks (float32 size on the device):');
  for (const s of report.subnetworks) {
    const tasks = Object.entries(s.tasks).map(([c, t]) => `${c}=${t}`).join(' ') || 'shared';
    console.log(`  ${tasks.padEnd(24)} encoder ${s.params.encoder} decoder ${s.params.decoder} total ${s.params.total} (${mb(s.bytes)})  pairs ${s.pairs.join(' ')}`);
  }
  return 0;
}

async function* inputLines(texts: string[]): AsyncGenerator<string> {
  if (texts.length > 0) {
    yield* texts;
    return;
  }
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) yield line;
}

async function cmdTranslate(args: string[]): Promise<number> {
  const { flags, positionals } = parse(args, {
    model: { type: 'string' }, source: { type: 'string' }, target: { type: 'string' },
    beam: { type: 'string' }, 'n-best': { type: 'string' }, 'max-length': { type: 'string' }, 'batch-size': { type: 'string' },
  }, true);
  const dir = { source: required(flags, 'source'), target: required(flags, 'target') };
  const modelDir = (flags.model as string | undefined) ?? DEFAULT_MODEL_DIR;
  if (flags.model === undefined && !fs.existsSync(modelDir)) throw new Error(`no --model given and the built-in demo model is missing at ${modelDir}`);
  const opts = {
    beamSize: positiveInt(flags, 'beam') ?? 1,
    nBest: positiveInt(flags, 'n-best') ?? 1,
    maxLength: positiveInt(flags, 'max-length'),
    batchSize: positiveInt(flags, 'batch-size') ?? 32,
  };
  if (opts.nBest > opts.beamSize) throw new UsageError(`--n-best (${opts.nBest}) cannot exceed --beam (${opts.beamSize})`);
  await initBackend({ log });
  const translator = await Translator.load(modelDir, dir);
  try {
    // Lines are translated a batch at a time so stdin streams, and printed in input order.
    let pending: string[] = [];
    const flush = async () => {
      // Long lines are cut into sentences the model takes, so no line fails the file.
      for (const t of await translateLines(translator, pending, dir, opts)) {
        console.log(t.text);
        for (const alt of t.alternatives) console.log(`\t${alt}`);
      }
      pending = [];
    };
    for await (const line of inputLines(positionals)) {
      pending.push(line);
      if (pending.length === opts.batchSize) await flush();
    }
    if (pending.length > 0) await flush();
  } finally {
    translator.dispose();
  }
  return 0;
}

async function cmdBench(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what === 'server') {
    const { flags } = parse(rest, { model: { type: 'string' }, data: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, concurrency: { type: 'string' }, workers: { type: 'string' }, 'workers-only': { type: 'boolean' }, json: { type: 'string' } });
    await initBackend({ log });
    const { benchServer } = await import('../bench/server.ts');
    await benchServer({
      model: flags.model as string | undefined,
      data: flags.data as string | undefined,
      seconds: positiveInt(flags, 'seconds'),
      rounds: positiveInt(flags, 'rounds'),
      concurrency: positiveInt(flags, 'concurrency'),
      workers: positiveInt(flags, 'workers'),
      workersOnly: flags['workers-only'] === true,
      json: flags.json as string | undefined,
    });
    return 0;
  }
  if (what === 'train') {
    const { flags } = parse(rest, { steps: { type: 'string' }, 'batch-tokens': { type: 'string' }, vocab: { type: 'string' }, 'd-model': { type: 'string' }, workers: { type: 'string' }, config: { type: 'string' }, json: { type: 'string' } });
    const options = {
      steps: positiveInt(flags, 'steps'),
      batchTokens: positiveInt(flags, 'batch-tokens'),
      vocab: positiveInt(flags, 'vocab'),
      dModel: positiveInt(flags, 'd-model'),
      workers: positiveInt(flags, 'workers'),
      config: flags.config as string | undefined,
    };
    if ((process.env.TASKMOE_BACKEND ?? '') === '') {
      const { benchTrainBackends } = await import('../bench/train-backends.ts');
      await benchTrainBackends({ ...options, json: flags.json as string | undefined });
      return 0;
    }
    await initBackend({ log });
    const { benchTrain } = await import('../bench/train.ts');
    const result = await benchTrain(options);
    if (typeof flags.json === 'string') fs.writeFileSync(flags.json, JSON.stringify(result, null, 2) + '\n');
    return 0;
  }
  if (what === 'faults') {
    const { flags } = parse(rest, { model: { type: 'string' }, workers: { type: 'string' } });
    await (await import('../bench/faults.ts')).benchFaults({ model: flags.model as string | undefined, workers: positiveInt(flags, 'workers') });
    return 0;
  }
  if (what !== 'engine') throw new UsageError('usage: taskmoe bench engine|server|train|faults ... (see taskmoe --help)');
  const { flags } = parse(rest, {
    json: { type: 'string' }, quick: { type: 'boolean' }, configs: { type: 'string' }, batch: { type: 'string' }, variants: { type: 'string' }, reps: { type: 'string' }, onnx: { type: 'boolean' }, threads: { type: 'string' },
  });
  if (flags.threads !== undefined && flags.onnx !== true) throw new UsageError('--threads goes with --onnx (the intra-op threads of ONNX Runtime)');
  const [json, configs, variants] = [flags.json as string | undefined, listFlag(flags, 'configs'), listFlag(flags, 'variants')];
  const batchSizes = listFlag(flags, 'batch')?.map((b) => positiveInt({ batch: b }, 'batch')!);
  const threads = listFlag(flags, 'threads')?.map((t) => positiveInt({ threads: t }, 'threads')!);
  const options = { json, quick: flags.quick === true, configs, batchSizes, variants, reps: positiveInt(flags, 'reps'), log: (s: string) => console.log(s) };
  await initBackend({ log });
  if (flags.onnx === true) {
    await (await import('../bench/engine/onnx.ts')).benchEngineOnnx({ ...options, threads });
    return 0;
  }
  await (await import('../bench/engine/index.ts')).benchEngine(options);
  return 0;
}

async function cmdTokenizer(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what !== 'train') throw new UsageError('usage: taskmoe tokenizer train --data DIR --vocab-size N --out FILE.model');
  const { flags } = parse(rest, { data: { type: 'string', multiple: true }, 'vocab-size': { type: 'string' }, out: { type: 'string' }, languages: { type: 'string' }, 'sentences-per-language': { type: 'string' }, seed: { type: 'string' }, 'character-coverage': { type: 'string' } });
  const vocabSize = positiveInt(flags, 'vocab-size');
  if (vocabSize === undefined) throw new UsageError('--vocab-size is required');
  const result = await trainTokenizer({
    dataDir: (flags.data as unknown as string[] | undefined) ?? [required(flags, 'data')],
    vocabSize,
    out: required(flags, 'out'),
    languages: listFlag(flags, 'languages'),
    sentencesPerLanguage: positiveInt(flags, 'sentences-per-language'),
    seed: positiveInt(flags, 'seed'),
    characterCoverage: flags['character-coverage'] === undefined ? undefined : Number(flags['character-coverage']),
  });
  log(`wrote ${flags.out}: ${result.languages.join(',')} from ${result.sentences} sentences`);
  return 0;
}

async function cmdServe(args: string[]): Promise<number> {
  const { flags } = parse(args, Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: s.kind === 'bool' ? 'boolean' as const : 'string' as const }])));
  let settings;
  try {
    settings = resolveSettings(flags as Record<string, string | boolean | undefined>);
  } catch (err) {
    if (err instanceof SettingsError) throw new UsageError(err.message);
    throw err;
  }
  if (flags.model === undefined && process.env.TASKMOE_MODEL === undefined && !fs.existsSync(settings.modelDir)) {
    throw new Error(`no --model given and the built-in demo model is missing at ${settings.modelDir}`);
  }
  await serve(settings, log);
  return 0;
}

async function cmdTrain(args: string[]): Promise<number> {
  const { flags } = parse(args, {
    config: { type: 'string' }, data: { type: 'string', multiple: true }, out: { type: 'string' }, steps: { type: 'string' }, resume: { type: 'boolean' },
    workers: { type: 'string' }, init: { type: 'string' }, 'init-step': { type: 'string' },
  });
  if (flags['init-step'] !== undefined && flags.init === undefined) throw new UsageError('--init-step needs --init MODEL_DIR');
  const { chooseTrainingBackend } = await import('../train/backend-choice.ts');
  const decision = await chooseTrainingBackend({ config: required(flags, 'config'), workers: positiveInt(flags, 'workers'), log });
  await initBackend({ force: decision.backend, log });
  const result = await train({
    config: required(flags, 'config'),
    data: flags.data as unknown as string[] | undefined,
    out: required(flags, 'out'),
    steps: positiveInt(flags, 'steps'),
    resume: flags.resume === true,
    workers: decision.workers ?? positiveInt(flags, 'workers'),
    init: flags.init === undefined ? undefined : { model: String(flags.init), step: nonNegativeInt(flags, 'init-step') ?? 0 },
  });
  log(`${result.interrupted ? 'interrupted' : 'finished'} at step ${result.step}; checkpoint in ${flags.out}/latest/model`);
  return result.interrupted ? 130 : 0;
}

async function cmdEval(args: string[]): Promise<number> {
  const { flags } = parse(args, { model: { type: 'string' }, data: { type: 'string' }, json: { type: 'string' }, beam: { type: 'string' }, 'batch-size': { type: 'string' }, languages: { type: 'string' } });
  await initBackend({ log });
  const result = await evaluate({
    model: (flags.model as string | undefined) ?? DEFAULT_MODEL_DIR,
    data: required(flags, 'data'),
    json: flags.json as string | undefined,
    beam: positiveInt(flags, 'beam'),
    batchSize: positiveInt(flags, 'batch-size'),
    languages: listFlag(flags, 'languages'),
  });
  console.log(formatEvaluation(result));
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: cmdServe,
  train: cmdTrain,
  eval: cmdEval,
  init: cmdInit,
  extract: cmdExtract,
  export: (args) => import('../onnx/export-command.ts').then((m) => m.exportCommand(args)),
  convert: cmdConvert,
  average: cmdAverage,
  inspect: cmdInspect,
  translate: cmdTranslate,
  bench: cmdBench,
  tokenizer: cmdTokenizer,
  import: importCommand,
  keys: async (args) => (await import('../server/front-door/keys-cli.ts')).runKeys(args),
};

/** Runs the CLI; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    console.error(`taskmoe: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`taskmoe ${command}: ${err.message} (see taskmoe --help)`);
      return 2;
    }
    throw err;
  }
}
