// Decode throughput of an imported OPUS-MT-shaped Marian model (random weights) against Hugging Face
// Transformers' generate on the same model, same inputs, same thread count, side by side.
//
//   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install --retries 0 torch transformers safetensors sentencepiece
//   TASKMOE_BACKEND=wasm node --import tsx scripts/hf-throughput.ts --python /tmp/venv/bin/python [--batches 1,8,32] [--tokens 20]
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
import { Seq2Seq } from '../src/models/model.ts';

const { values } = parseArgs({
  options: {
    python: { type: 'string', default: 'python3' },
    dir: { type: 'string', default: '/tmp/taskmoe-opus-shaped' },
    batches: { type: 'string', default: '1,8,32' },
    tokens: { type: 'string', default: '20' },
    sentences: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
  },
});
const script = path.join(import.meta.dirname, 'hf-bench.py');
const hfDir = path.join(values.dir!, 'hf');
const ourDir = path.join(values.dir!, 'taskmoe');
const tokens = Number(values.tokens);
const rounds = Number(values.rounds);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (!fs.existsSync(path.join(hfDir, 'model.safetensors'))) execFileSync(values.python!, [script, 'make', hfDir], { stdio: 'inherit' });
const backend = await initBackend({ log: () => {} });
if (!fs.existsSync(path.join(ourDir, 'config.json'))) await importHf(hfDir, ourDir, { sources: ['en'], targets: ['de'] });
const reader = await CheckpointReader.open(ourDir);
const model = await Seq2Seq.load(reader);
const { decoderStart, eos } = reader.config.specialIds!;

let seed = 3;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const allSources = Array.from({ length: 32 }, () => [
  ...Array.from({ length: 8 + Math.floor(rand() * 22) }, () => 2 + Math.floor(rand() * 58000)), eos,
]);

console.log(`OPUS-MT-shaped Marian (512/2048/8 heads/6+6, vocabulary 58101, random weights), max(batch, ${values.sentences}) sources, ${tokens} tokens each, greedy`);
console.log(`taskmoe on tfjs ${backend.name}; Transformers on torch CPU with ${values.threads} thread(s); median of ${rounds} rounds after a warm-up\n`);
console.log('batch | taskmoe tok/s | Transformers tok/s | taskmoe / Transformers');
console.log('----- | ------------- | ------------------ | ----------------------');
for (const batch of values.batches!.split(',').map(Number)) {
  const sources = allSources.slice(0, Math.max(batch, Number(values.sentences)));
  const sourcesFile = path.join(values.dir!, `sources-${batch}.json`);
  fs.writeFileSync(sourcesFile, JSON.stringify(sources));
  const times: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const started = performance.now();
    for (let s = 0; s < sources.length; s += batch) {
      const group = sources.slice(s, s + batch);
      decode(model, group, group.map(() => ({ source: 'en', target: 'de' })), { bosId: decoderStart, eosId: eos, maxLength: tokens, ignoreEos: true });
    }
    if (r > 0) times.push((performance.now() - started) / 1000);
  }
  const ours = (sources.length * tokens) / median(times);
  const hf = JSON.parse(execFileSync(values.python!, [script, 'run', hfDir, sourcesFile, '--batch', String(batch), '--tokens', String(tokens), '--threads', values.threads!, '--rounds', String(rounds)], { encoding: 'utf8' }).trim().split('\n').pop()!) as { seconds: number[]; tokens: number };
  const theirs = hf.tokens / median(hf.seconds);
  console.log(`${String(batch).padStart(5)} | ${ours.toFixed(1).padStart(13)} | ${theirs.toFixed(1).padStart(18)} | ${(ours / theirs).toFixed(2).padStart(21)}x`);
}
model.dispose();
