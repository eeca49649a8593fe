// `taskmoe export --onnx`: the files load in a fresh ONNX Runtime session (the package's public,
// asynchronous API, as any ONNX consumer would load them) and give TensorFlow.js's logits; the
// README names every input and output.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { type Routing, parseConfig } from '../../src/models/config.ts';
import { TfjsEngine } from '../../src/models/engine.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import type { Direction } from '../../src/models/transformer.ts';
import { ONNX_FILES } from '../../src/onnx/export.ts';
import { loadTokenizer } from '../../src/tokenizer/model-tokenizer.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { runCli } from '../helpers/cli.ts';
import { importedFixture } from '../helpers/hf.ts';
import { maxRelativeError, randomCheckpoint, randomSources, tempDir, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const f32 = (data: number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(data), dims);
const i64 = (data: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(data.map(BigInt)), dims);

/** Decoder-step logits for `steps` teacher-forced tokens, from the exported files alone. */
async function exportedLogits(
  dir: string,
  sources: number[][],
  tasks: { enc?: number[]; dec?: number[] },
  steps: number[][],
): Promise<Float32Array> {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const [encoder, start, step] = await Promise.all(
    Object.values(ONNX_FILES).map((f) => ort.InferenceSession.create(path.join(dir, f))),
  );
  const b = sources.length;
  const s = Math.max(...sources.map((x) => x.length));
  const valid = sources.flatMap((x) => Array.from({ length: s }, (_, t) => (t < x.length ? 1 : 0)));
  const srcBias = f32(
    valid.map((v) => (v ? 0 : -1e9)),
    [b, 1, 1, s],
  );
  const encFeeds: Record<string, ort.Tensor> = {
    ids: i64(
      sources.flatMap((x) => [...x, ...new Array(s - x.length).fill(0)]),
      [b, s],
    ),
    srcBias,
    valid: f32(valid, [b, s]),
  };
  if (encoder.inputNames.includes('encTask')) encFeeds.encTask = i64(tasks.enc!, [b]);
  const { memory } = await encoder.run(encFeeds);
  const startFeeds: Record<string, ort.Tensor> = { memory };
  if (start.inputNames.includes('valid')) startFeeds.valid = f32(valid, [b, s]);
  if (start.inputNames.includes('decTask')) startFeeds.decTask = i64(tasks.dec!, [b]);
  const cross = await start.run(startFeeds);
  const [h, dh] = [cfg.numHeads, cfg.dModel / cfg.numHeads];
  let past: Record<string, ort.Tensor> = {};
  for (let i = 0; i < cfg.decoderLayers; i++) {
    past[`pastK.${i}`] = f32([], [b, h, 0, dh]);
    past[`pastV.${i}`] = f32([], [b, h, 0, dh]);
  }
  const out: number[] = [];
  for (let t = 0; t < steps[0].length; t++) {
    const feeds: Record<string, ort.Tensor> = {
      ...past,
      ...cross,
      srcBias,
      tokens: i64(
        steps.map((row) => row[t]),
        [b],
      ),
      positions: i64(new Array(b).fill(t), [b]),
      selfBias: f32(new Array(b * (t + 1)).fill(0), [b, 1, 1, t + 1]),
      topK: i64([1], [1]),
    };
    const r = await step.run(Object.fromEntries(step.inputNames.map((n) => [n, feeds[n]])));
    out.push(...(r.logits.data as Float32Array));
    past = {};
    for (let i = 0; i < cfg.decoderLayers; i++) {
      past[`pastK.${i}`] = r[`presentK.${i}`];
      past[`pastV.${i}`] = r[`presentV.${i}`];
    }
  }
  // [T, B, V] -> [B, T, V], as the reference is laid out
  const v = cfg.vocabSize;
  const T = steps[0].length;
  const byRow = new Float32Array(out.length);
  for (let t = 0; t < T; t++)
    for (let r = 0; r < b; r++) byRow.set(out.slice((t * b + r) * v, (t * b + r + 1) * v), (r * T + t) * v);
  return byRow;
}

function referenceLogits(model: Seq2Seq, sources: number[][], dirs: Direction[], steps: number[][]): Float32Array {
  const engine = TfjsEngine.of(model);
  const state = engine.start(sources, dirs);
  const [b, T, v] = [steps.length, steps[0].length, model.config.vocabSize];
  const out = new Float32Array(b * T * v);
  for (let t = 0; t < T; t++) {
    const logits = engine.logits(
      state,
      steps.map((row) => row[t]),
    );
    for (let r = 0; r < b; r++) out.set(logits.subarray(r * v, (r + 1) * v), (r * T + t) * v);
  }
  engine.disposeState(state);
  return out;
}

const CASES: { routing: [Routing, Routing]; pair?: Direction }[] = [
  { routing: ['token', 'target'] },
  { routing: ['token', 'target'], pair: { source: 'en', target: 'de' } },
  { routing: ['sentence', 'pair'] },
];

for (const { routing, pair } of CASES) {
  test(`export --onnx of a ${routing.join('/')} ${pair ? `sub-network (${pair.source}-${pair.target})` : 'full model'}: a fresh ORT session matches TensorFlow.js`, async () => {
    const cfg = tinyConfig(...routing);
    const modelDir = await randomCheckpoint(cfg, 5);
    const out = path.join(tempDir(), 'onnx');
    const args = [
      'export',
      '--onnx',
      '--model',
      modelDir,
      '--out',
      out,
      ...(pair ? ['--source', pair.source, '--target', pair.target] : []),
    ];
    const cli = await runCli(args);
    assert.equal(cli.code, 0, cli.stderr);
    for (const f of [...Object.values(ONNX_FILES), 'config.json', 'tokenizer.model', 'README.md'])
      assert.ok(fs.existsSync(path.join(out, f)), `${f} written`);

    const reader = await CheckpointReader.open(modelDir);
    const model = pair ? await Seq2Seq.loadSubnetwork(reader, pair) : await Seq2Seq.load(reader);
    try {
      const dirs: Direction[] = pair
        ? [pair, pair]
        : [
            { source: 'en', target: 'de' },
            { source: 'fr', target: 'en' },
          ];
      const sources = randomSources([6, 9], 1000, 8);
      const steps = randomSources([4, 4], 1000, 2);
      const taskOf = (r: Routing, d: Direction) =>
        r === 'target' ? cfg.languages.indexOf(d.target) : cfg.pairs.indexOf(`${d.source}-${d.target}`);
      const tasks = { enc: dirs.map((d) => taskOf(routing[0], d)), dec: dirs.map((d) => taskOf(routing[1], d)) };
      const err = maxRelativeError(
        await exportedLogits(out, sources, tasks, steps),
        referenceLogits(model, sources, dirs, steps),
      );
      assert.ok(err <= 1e-4, `relative logit error ${err}`);
    } finally {
      model.dispose();
    }

    const readme = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    for (const f of Object.values(ONNX_FILES)) {
      const session = await ort.InferenceSession.create(path.join(out, f));
      for (const name of [...session.inputNames, ...session.outputNames]) {
        const documented = name.replace(/\.\d+$/, '.i');
        assert.ok(readme.includes(documented) || readme.includes(name), `README documents ${f}'s ${name}`);
      }
    }
  });
}

test('export refuses a missing --onnx and a lone --source', async () => {
  const noFormat = await runCli(['export', '--model', 'x', '--out', 'y']);
  assert.equal(noFormat.code, 2);
  assert.match(noFormat.stderr, /export --onnx/);
  const lone = await runCli(['export', '--onnx', '--model', 'x', '--out', 'y', '--source', 'en']);
  assert.equal(lone.code, 2);
});

for (const name of ['marian-separate', 'm2m100']) {
  test(`export --onnx of an imported ${name} model writes every tokenizer file its config names, and they tokenize as the model does`, async () => {
    const { dir, ref } = await importedFixture(name);
    const out = path.join(tempDir(), 'onnx');
    const cli = await runCli(['export', '--onnx', '--model', dir, '--out', out]);
    assert.equal(cli.code, 0, cli.stderr);
    const cfg = parseConfig(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')));
    const exported = await loadTokenizer(out, cfg);
    const original = await loadTokenizer(dir, (await CheckpointReader.open(dir)).config);
    for (const text of ref.texts)
      assert.deepEqual(
        exported.encodeSource(text, ref.target, ref.source),
        original.encodeSource(text, ref.target, ref.source),
      );
    const readme = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    assert.doesNotMatch(readme, /target language tag first/, 'the README describes this model’s prompt');
  });
}
