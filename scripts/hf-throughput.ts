// Decode throughput of an imported OPUS-MT-shaped Marian model (random weights) against Hugging Face
// Transformers' generate on the same model, same inputs, same thread count, side by side in one run:
// taskmoe on ONNX Runtime (the CPU serving engine) at each thread count, and on tfjs-wasm (1 thread,
// for comparison).
//
//   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install --retries 0 torch transformers safetensors sentencepiece
//   flock /work/wt/bench.lock node --import tsx scripts/hf-throughput.ts --python /tmp/venv/bin/python [--batches 1,8,32] [--threads 1,2] [--tokens 20]
//
// Greedy decoding of exactly --tokens tokens per sentence (EOS ignored on both sides) for
// max(batch, --sentences) sources of 8-30 tokens; the median of --rounds timed rounds after a warm-up.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.ts';
import { importHf } from '../src/import/hf-import.ts';
import { CheckpointReader } from '../src/models/checkpoint.ts';
import { decode } from '../src/models/decoding.ts';
import { type DecoderEngine, TfjsEngine } from '../src/models/engine.ts';
import { Seq2Seq } from '../src/models/model.ts';
import { OrtEngine } from '../src/onnx/engine.ts';
import { graphsOf } from '../src/onnx/parts.ts';

const { values } = parseArgs({
  options: {
    python: { type: 'string', default: 'python3' },
    dir: { type: 'string', default: '/tmp/taskmoe-opus-shaped' },
    batches: { type: 'string', default: '1,8,32' },
    threads: { type: 'string', default: '1,2' },
    tokens: { type: 'string', default: '20' },
    sentences: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    wasm: { type: 'boolean', default: true },
  },
});
const script = path.join(import.meta.dirname, 'hf-bench.py');
const hfDir = path.join(values.dir!, 'hf');
const ourDir = path.join(values.dir!, 'taskmoe');
const tokens = Number(values.tokens);
const rounds = Number(values.rounds);
const threadCounts = values.threads!.split(',').map(Number);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (!fs.existsSync(path.join(hfDir, 'model.safetensors')))
  execFileSync(values.python!, [script, 'make', hfDir], { stdio: 'inherit' });
const backend = await initBackend({ force: 'wasm', log: () => {} });
if (!fs.existsSync(path.join(ourDir, 'config.json')))
  await importHf(hfDir, ourDir, { sources: ['en'], targets: ['de'] });
const reader = await CheckpointReader.open(ourDir);
const model = await Seq2Seq.load(reader);
const { decoderStart, eos } = reader.config.specialIds!;
let started = performance.now();
const graphs = graphsOf(model);
const onnx = new Map(threadCounts.map((t) => [t, OrtEngine.fromGraphs(graphs, { threads: t })]));
const buildSeconds = (performance.now() - started) / 1000;

let seed = 3;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const allSources = Array.from({ length: 32 }, () => [
  ...Array.from({ length: 8 + Math.floor(rand() * 22) }, () => 2 + Math.floor(rand() * 58000)),
  eos,
]);

// target tokens/s of one engine: the median of `rounds` timed rounds after a warm-up
function ours(engine: DecoderEngine, sources: number[][], batch: number): number {
  const times: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    started = performance.now();
    for (let s = 0; s < sources.length; s += batch) {
      const group = sources.slice(s, s + batch);
      decode(
        engine,
        group,
        group.map(() => ({ source: 'en', target: 'de' })),
        { bosId: decoderStart, eosId: eos, maxLength: tokens, ignoreEos: true },
      );
    }
    if (r > 0) times.push((performance.now() - started) / 1000);
  }
  return (sources.length * tokens) / median(times);
}

function transformers(sourcesFile: string, batch: number, threads: number): number {
  const args = [
    script,
    'run',
    hfDir,
    sourcesFile,
    '--batch',
    String(batch),
    '--tokens',
    String(tokens),
    '--threads',
    String(threads),
    '--rounds',
    String(rounds),
  ];
  const env = { ...process.env, TQDM_DISABLE: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1' }; // no progress bars in the table
  const hf = JSON.parse(execFileSync(values.python!, args, { encoding: 'utf8', env }).trim().split('\n').pop()!) as {
    seconds: number[];
    tokens: number;
  };
  return hf.tokens / median(hf.seconds);
}

console.log(
  `OPUS-MT-shaped Marian (512/2048/8 heads/6+6, vocabulary 58101, random weights), max(batch, ${values.sentences}) sources, ${tokens} tokens each, greedy`,
);
console.log(
  `taskmoe on ONNX Runtime (graphs and ${onnx.size} session sets built in ${buildSeconds.toFixed(1)} s) and on tfjs ${backend.name} (1 thread); Transformers on torch CPU`,
);
console.log(`target tokens/s, median of ${rounds} rounds after a warm-up, each row's engines run one after another\n`);
console.log(
  'batch | threads | Transformers | taskmoe ORT | ORT / Transformers | taskmoe wasm (1 thread) | wasm / Transformers',
);
console.log(
  '----- | ------- | ------------ | ----------- | ------------------ | ----------------------- | -------------------',
);
const cell = (x: number, w: number) => x.toFixed(1).padStart(w);
for (const batch of values.batches!.split(',').map(Number)) {
  const sources = allSources.slice(0, Math.max(batch, Number(values.sentences)));
  const sourcesFile = path.join(values.dir!, `sources-${batch}.json`);
  fs.writeFileSync(sourcesFile, JSON.stringify(sources));
  const wasm = values.wasm ? ours(TfjsEngine.of(model), sources, batch) : NaN;
  for (const threads of threadCounts) {
    const ort = ours(onnx.get(threads)!, sources, batch);
    const hf = transformers(sourcesFile, batch, threads);
    const wasmCells =
      threads === 1 && values.wasm
        ? `${cell(wasm, 23)} | ${cell(wasm / hf, 18)}x`
        : `${''.padStart(23)} | ${''.padStart(19)}`;
    console.log(
      `${String(batch).padStart(5)} | ${String(threads).padStart(7)} | ${cell(hf, 12)} | ${cell(ort, 11)} | ${cell(ort / hf, 17)}x | ${wasmCells}`,
    );
  }
}
for (const engine of onnx.values()) engine.dispose();
model.dispose();
