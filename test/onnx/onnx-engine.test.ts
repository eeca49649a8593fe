// ONNX Runtime against TensorFlow.js on the same random weights, for every routing mix the engine
// tests cover: logits within 1e-4 step by step, identical greedy and beam outputs, full models and
// extracted sub-networks, alone and batched, fp32 and fp16 storage, continuous batching and
// cancellation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ModelConfig, type Routing, targetVocabSize } from '../../src/models/config.ts';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { decode, type DecodeOptions, GreedyBatch, type Hypothesis, lengthGroups } from '../../src/models/decoding.ts';
import { type DecoderEngine, TfjsEngine, loadOnnxEngine, servingEngineOf } from '../../src/models/engine.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import type { Direction } from '../../src/models/transformer.ts';
import { OrtEngine } from '../../src/onnx/engine.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { maxRelativeError, randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const COMBINATIONS: [Routing, Routing][] = [
  ['dense', 'dense'],
  ['token', 'token'],
  ['sentence', 'sentence'],
  ['target', 'target'],
  ['pair', 'pair'],
  ['token', 'target'],
  ['token', 'pair'],
];
const SPECIAL: DecodeOptions = { bosId: 2, eosId: 3 };
const BEAM: DecodeOptions = { ...SPECIAL, beamSize: 4, nBest: 4 };

/** Step-by-step logits through each engine's KV cache, teacher-forced on `targets` ([B, T]). */
function stepLogits(engine: DecoderEngine, sources: number[][], dirs: Direction[], targets: number[][]): Float32Array {
  const state = engine.start(sources, dirs);
  const [b, t, v] = [targets.length, targets[0].length, targetVocabSize(engine.config)];
  const out = new Float32Array(b * t * v);
  try {
    for (let step = 0; step < t; step++) {
      const values = engine.logits(
        state,
        targets.map((row) => row[step]),
      );
      for (let r = 0; r < b; r++) out.set(values.subarray(r * v, (r + 1) * v), (r * t + step) * v);
    }
  } finally {
    engine.disposeState(state);
  }
  return out;
}

function assertSameHypotheses(got: Hypothesis[][], want: Hypothesis[][], what: string): void {
  assert.deepEqual(
    got.map((h) => h.map((x) => x.tokens)),
    want.map((h) => h.map((x) => x.tokens)),
    `${what}: tokens`,
  );
  got.forEach((hyps, b) =>
    hyps.forEach((h, i) => {
      const w = want[b][i].logProb;
      assert.ok(
        Math.abs(h.logProb - w) <= 1e-4 * Math.max(1, Math.abs(w)),
        `${what}: sentence ${b} hypothesis ${i} logProb ${h.logProb} vs ${w}`,
      );
    }),
  );
}

/** Logits, greedy and beam outputs of both engines on a batch and on each sentence alone. */
function assertParity(model: Seq2Seq, sources: number[][], dirs: Direction[], targets: number[][]): void {
  const ort = OrtEngine.of(model);
  const tfjs = TfjsEngine.of(model);
  const err = maxRelativeError(stepLogits(ort, sources, dirs, targets), stepLogits(tfjs, sources, dirs, targets));
  assert.ok(err <= 1e-4, `batched: relative logit error ${err}`);
  sources.forEach((src, b) => {
    const alone = maxRelativeError(
      stepLogits(ort, [src], [dirs[b]], [targets[b]]),
      stepLogits(tfjs, [src], [dirs[b]], [targets[b]]),
    );
    assert.ok(alone <= 1e-4, `sentence ${b} alone: relative logit error ${alone}`);
  });
  assertSameHypotheses(decode(ort, sources, dirs, SPECIAL), decode(model, sources, dirs, SPECIAL), 'greedy, batched');
  assertSameHypotheses(decode(ort, sources, dirs, BEAM), decode(model, sources, dirs, BEAM), 'beam 4, batched');
  assertSameHypotheses(
    decode(ort, [sources[0]], [dirs[0]], BEAM),
    decode(model, [sources[0]], [dirs[0]], BEAM),
    'beam 4, alone',
  );
}

for (const [encoder, decoder] of COMBINATIONS) {
  describe(`ONNX Runtime vs TensorFlow.js, ${encoder}/${decoder} routing`, () => {
    let reader: CheckpointReader;
    let full: Seq2Seq;
    // Lengths 36 and 3..7 are encoded in two length groups.
    const sources = randomSources([7, 3, 36, 5], 1000, 42);
    const targets = randomSources([6, 6, 6, 6], 1000, 9);
    const dirs: Direction[] = [
      { source: 'en', target: 'de' },
      { source: 'fr', target: 'de' },
      { source: 'en', target: 'de' },
      { source: 'en', target: 'fr' },
    ];

    before(async () => {
      reader = await CheckpointReader.open(await randomCheckpoint(tinyConfig(encoder, decoder)));
      full = await Seq2Seq.load(reader);
    });
    after(() => full.dispose());

    test('the full model: logits within 1e-4, identical greedy and beam outputs, batched and alone', () => {
      assert.ok(
        lengthGroups(sources.map((s) => s.length).sort((a, b) => a - b)).length > 1,
        'the batch is encoded in length groups',
      );
      assertParity(full, sources, dirs, targets);
    });

    test('the extracted en-de sub-network: the same parity', async () => {
      const sub = await Seq2Seq.loadSubnetwork(reader, { source: 'en', target: 'de' });
      try {
        const served = dirs
          .map((d, i) => [d, i] as const)
          .filter(([d]) => sub.encoder.serves(d) && sub.decoder.serves(d));
        assertParity(
          sub,
          served.map(([, i]) => sources[i]),
          served.map(([d]) => d),
          served.map(([, i]) => targets[i]),
        );
      } finally {
        sub.dispose();
      }
    });

    test('continuous batching (joining, leaving, cancelled rows) gives what TensorFlow.js gives', () => {
      const run = (engine: DecoderEngine): Hypothesis[] => {
        const batch = new GreedyBatch<number>(engine, SPECIAL);
        const out: Hypothesis[] = [];
        const joins = new Map([
          [0, [0]],
          [2, [2]],
          [5, [1, 3]],
        ]);
        for (let step = 0; step === 0 || batch.size > 0 || step <= 5; step++) {
          for (const i of joins.get(step) ?? []) batch.add([sources[i]], [dirs[i]], [i], i === 2 ? 6 : undefined);
          if (step === 7) batch.cancel((tag) => tag === 3);
          for (const { tag, hypothesis } of batch.step()) out[tag] = hypothesis;
        }
        batch.dispose();
        return out;
      };
      const ort = run(OrtEngine.of(full));
      const tfjs = run(TfjsEngine.of(full));
      assert.equal(ort[3], undefined, 'the cancelled sentence is not reported');
      assertSameHypotheses(
        ort.map((h) => (h === undefined ? [] : [h])),
        tfjs.map((h) => (h === undefined ? [] : [h])),
        'continuous batching',
      );
    });
  });
}

test('a float16-stored checkpoint runs on ONNX Runtime as on TensorFlow.js', async () => {
  const cfg = tinyConfig('token', 'target');
  const model = await Seq2Seq.load(await CheckpointReader.open(await randomCheckpoint(cfg, 11, 'float16')));
  try {
    const sources = randomSources([9, 4], 1000, 3);
    const dirs = [
      { source: 'en', target: 'de' },
      { source: 'ja', target: 'fr' },
    ];
    assertParity(model, sources, dirs, randomSources([5, 5], 1000, 4));
  } finally {
    model.dispose();
  }
});

test('an unknown task is refused with the component and pair named', async () => {
  const model = await Seq2Seq.load(await CheckpointReader.open(await randomCheckpoint(tinyConfig('pair', 'pair'))));
  try {
    assert.throws(
      () => OrtEngine.of(model).start([[5, 6]], [{ source: 'de', target: 'ja' }]),
      /encoder has no task for de-ja/,
    );
  } finally {
    model.dispose();
  }
});

// The architecture variants of imported models (models/config.ts's `arch`, target vocabularies,
// suppressed ids), each mix on random weights (biases, learned positions, untied output random too).
const VARIANTS: { name: string; routing: [Routing, Routing]; over: Partial<ModelConfig> }[] = [
  {
    name: 'Marian (post-LN, swish, biases, logits bias, a suppressed id)',
    routing: ['dense', 'dense'],
    over: { arch: { norm: 'post', activation: 'swish', bias: true, logitsBias: true }, suppressIds: [5] },
  },
  {
    name: 'learned positions with an offset, unscaled embeddings, gelu, untied output, a target vocabulary, LN eps 1e-6',
    routing: ['dense', 'dense'],
    over: {
      arch: {
        positions: 'learned',
        positionOffset: 2,
        scaleEmbedding: false,
        norm: 'post',
        activation: 'gelu',
        bias: true,
        tiedOutput: false,
        logitsBias: true,
        layerNormEps: 1e-6,
      },
      targetVocabSize: 700,
      suppressIds: [7],
    },
  },
  {
    name: 'NLLB-MoE (fairseq positions from offset 2, biases, token-routed experts with biases)',
    routing: ['token', 'token'],
    over: { arch: { positions: 'fairseq', positionOffset: 2, bias: true } },
  },
  {
    name: 'task- and sentence-routed experts in a post-LN gelu model with biases',
    routing: ['sentence', 'target'],
    over: { arch: { norm: 'post', activation: 'gelu', bias: true } },
  },
];

for (const { name, routing, over } of VARIANTS) {
  test(`architecture variant on ONNX Runtime as on TensorFlow.js: ${name}`, async () => {
    const reader = await CheckpointReader.open(await randomCheckpoint(tinyConfig(...routing, over), 5));
    const model = await Seq2Seq.load(reader);
    try {
      const sources = randomSources([7, 3, 36, 5], 1000, 42);
      const dirs: Direction[] = [
        { source: 'en', target: 'de' },
        { source: 'fr', target: 'de' },
        { source: 'en', target: 'de' },
        { source: 'en', target: 'fr' },
      ];
      assertParity(model, sources, dirs, randomSources([6, 6, 6, 6], 700, 9));
    } finally {
      model.dispose();
    }
  });
}

test('an imported model serves on ONNX Runtime (no fallback to TensorFlow.js)', async () => {
  const model = await Seq2Seq.load(
    await CheckpointReader.open(await randomCheckpoint(tinyConfig('dense', 'dense', VARIANTS[0].over))),
  );
  try {
    await loadOnnxEngine();
    assert.ok(servingEngineOf(model) instanceof OrtEngine);
  } finally {
    model.dispose();
  }
});
