// The roofline bound of the server at saturation (issue 17): cores x the plain 2-D matMul ceiling
// of ONNX Runtime (one thread, measured in the same run) / the FLOPs one sentence costs (from the
// model's config, at the corpus's own source lengths and the model's own output lengths).
import * as os from 'node:os';
import { type ModelConfig, hasExperts, isMoeLayer, parsePair } from '../models/config.ts';
import { FLOAT, GraphBuilder } from '../onnx/proto.ts';
import { OrtSession, Tensor } from '../onnx/session.ts';
import { Translator } from '../translator/index.ts';
import { median } from './stats.ts';

export interface MatmulCeiling {
  m: number;
  k: number;
  n: number;
  gflops: number;
}

export interface Roofline {
  /** Mean source tokens and decoder steps (generated tokens + EOS) of a sentence. */
  sourceTokens: number;
  decoderSteps: number;
  flopPerSentence: number;
  ceilings: MatmulCeiling[];
  /** The best of the ceilings, GFLOP/s on one thread. */
  ceilingGflops: number;
  cores: number;
  /** cores x ceiling / FLOP per sentence. */
  boundSentencesPerSecond: number;
}

/**
 * FLOPs (2 per multiply-add) of translating one sentence of `src` tokens in `steps` decoder steps:
 * the encoder, the cross-attention keys/values of the source, and each step (self-attention over
 * the steps so far, cross-attention, FFN or top-k experts, the output projection). Layer norms,
 * softmax and the argmax are left out: the bound counts matMul work only.
 */
export function sentenceFlops(cfg: ModelConfig, src: number, steps: number): number {
  const { dModel: d, dFF, vocabSize: V } = cfg;
  const { numExperts: E, topK: k } = cfg.moe;
  // An MoE layer costs its top-k experts (folded into one FFN of width k*dFF when extracted); only
  // token routing runs the gate per token.
  const gate = (c: 'encoder' | 'decoder') => (cfg.routing[c] === 'token' && hasExperts(cfg, c) ? d * E : 0);
  const ffn = (c: 'encoder' | 'decoder', i: number) =>
    isMoeLayer(cfg, c, i) ? gate(c) + k * 2 * d * dFF : 2 * d * dFF;
  let macs = 0;
  for (let i = 0; i < cfg.encoderLayers; i++) macs += src * (4 * d * d + 2 * src * d + ffn('encoder', i));
  macs += cfg.decoderLayers * src * 2 * d * d; // cross-attention keys and values, once per source
  for (let t = 1; t <= steps; t++) {
    for (let i = 0; i < cfg.decoderLayers; i++)
      macs += 4 * d * d + 2 * t * d + 2 * d * d + 2 * src * d + ffn('decoder', i);
    macs += d * V;
  }
  return 2 * macs;
}

/** GFLOP/s of one [m,k]x[k,n] MatMul graph on ONNX Runtime, median of 5 timed blocks. */
export function matmulCeiling(m: number, k: number, n: number, threads = 1): MatmulCeiling {
  const g = new GraphBuilder('matmul');
  const w = g.weight(
    'w',
    Float32Array.from({ length: k * n }, () => Math.random() - 0.5),
    [k, n],
  );
  g.output(g.op('MatMul', [g.input('x', FLOAT, [m, k]), w]), 'y', FLOAT, [m, n]);
  const session = new OrtSession(g.toBytes(), { threads });
  try {
    const x = new Tensor(
      'float32',
      Float32Array.from({ length: m * k }, () => Math.random() - 0.5),
      [m, k],
    );
    const flop = 2 * m * k * n;
    const reps = Math.max(10, Math.round(2e9 / flop)); // ~2 GFLOP a block
    for (let i = 0; i < reps; i++) session.run({ x }, ['y']);
    const blocks = Array.from({ length: 5 }, () => {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) session.run({ x }, ['y']);
      return (flop * reps) / ((performance.now() - t0) / 1000) / 1e9;
    });
    return { m, k, n, gflops: median(blocks) };
  } finally {
    session.dispose();
  }
}

/**
 * The bound for one pair: translates `texts` once (batches of `batch`) for the mean decoder steps,
 * and times the matMuls of a batch of `batch` rows against the model's weight shapes.
 */
export async function roofline(model: string, pair: string, texts: string[], batch: number): Promise<Roofline> {
  const dir = parsePair(pair);
  const translator = await Translator.load(model, dir, () => {});
  try {
    const cfg = translator.model.config;
    const sources = translator.encode(texts, dir);
    const out = translator.translateIds(sources, dir, { batchSize: batch });
    const sourceTokens = sources.reduce((s, ids) => s + ids.length, 0) / sources.length;
    const decoderSteps = out.reduce((s, t) => s + t.generatedTokens + 1, 0) / out.length;
    const flopPerSentence =
      sources.reduce((s, ids, i) => s + sentenceFlops(cfg, ids.length, out[i].generatedTokens + 1), 0) / sources.length;
    const { dModel: d, dFF, vocabSize: V } = cfg;
    const ceilings = [
      matmulCeiling(batch, d, V),
      matmulCeiling(batch, d, cfg.moe.topK * dFF),
      matmulCeiling(batch, d, d),
    ];
    const ceilingGflops = Math.max(...ceilings.map((c) => c.gflops));
    const cores = os.availableParallelism();
    return {
      sourceTokens,
      decoderSteps,
      flopPerSentence,
      ceilings,
      ceilingGflops,
      cores,
      boundSentencesPerSecond: (cores * ceilingGflops * 1e9) / flopPerSentence,
    };
  } finally {
    translator.dispose();
  }
}

export function formatRoofline(r: Roofline, served?: number): string {
  const shapes = r.ceilings.map((c) => `[${c.m},${c.k}]x[${c.k},${c.n}] ${c.gflops.toFixed(1)}`).join(', ');
  const lines = [
    `roofline: ${r.sourceTokens.toFixed(1)} source tokens, ${r.decoderSteps.toFixed(1)} decoder steps, ${(r.flopPerSentence / 1e6).toFixed(1)} MFLOP per sentence; ONNX Runtime 1-thread matMul GFLOP/s ${shapes}`,
    `roofline bound: ${r.cores} cores x ${r.ceilingGflops.toFixed(1)} GFLOP/s / ${(r.flopPerSentence / 1e6).toFixed(1)} MFLOP = ${r.boundSentencesPerSecond.toFixed(0)} sentences/s`,
  ];
  if (served !== undefined)
    lines.push(
      `server at saturation ${served.toFixed(1)} sentences/s = ${((100 * served) / r.boundSentencesPerSecond).toFixed(1)}% of the bound (target >= 60%), ${(served / 76).toFixed(2)}x 76 sentences/s (target >= 3x)`,
    );
  return lines.join('\n');
}
