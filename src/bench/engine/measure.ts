// Timing inside a benchmark process: one decode() call, a profiled decoder step grouped by what
// each kernel does, and the plain 2-D matMul ceiling of the backend.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../../models/config.ts';
import { decode } from '../../models/decoding.ts';
import type { Seq2Seq } from '../../models/model.ts';
import type { Direction, Encoder } from '../../models/transformer.ts';
import { median } from '../stats.ts';
import { BOS, DIRECTION, EOS } from './costs.ts';

/** Decoder steps of each variant's warm-up at every batch size. */
export const WARMUP_STEPS = 2;
/** Decoder steps profiled after the warm-up (kernel times: median per group). */
export const PROFILED_STEPS = 3;

export interface MatmulRow {
  config: string;
  m: number;
  k: number;
  n: number;
  ms: number;
  gflops: number;
  weightGBps: number;
}

export function timeDecode(model: Seq2Seq, src: number[][], steps: number): number {
  const dirs = src.map(() => DIRECTION);
  const t0 = performance.now();
  const out = decode(model, src, dirs, { bosId: BOS, eosId: EOS, ignoreEos: true, maxLength: steps });
  const dt = (performance.now() - t0) / 1000;
  if (out.length !== src.length || out.some((h) => h[0].tokens.length !== steps))
    throw new Error('decode did not produce the fixed length');
  return dt;
}

/** What a kernel of the decoder step is, from its name and input shapes. */
function kernelGroup(cfg: ModelConfig, name: string, inputShapes: (number[] | null)[]): string {
  const [a, b] = [inputShapes[0] ?? [], inputShapes[1] ?? []];
  if (name === 'BatchMatMul' || name === '_FusedMatMul') {
    if (!(a.length === 2 || (a.length === 3 && a[0] === 1))) return 'attention matMul (batched)';
    const [k, n] = b.slice(-2);
    const { dModel: d, dFF, vocabSize: V } = cfg;
    if (k === d && n === V) return 'output projection';
    if (n === cfg.moe.numExperts) return 'gate';
    if ((k === d && n % dFF === 0) || (n === d && k % dFF === 0)) return 'FFN/experts';
    return 'attention projections';
  }
  if (a.length === 2 && a[1] === cfg.vocabSize) return 'softmax/argmax over the vocabulary';
  if (name === 'Concat') return a.length === 4 ? 'KV-cache concat' : 'MoE combine (concat)';
  if (name === 'GatherV2') return 'gather';
  if (['Transpose', 'Softmax', 'TopK', 'Tile', 'SplitV', 'Slice'].includes(name)) return name;
  return 'elementwise/other';
}

export interface StepProfile {
  groups: Record<string, number>;
  /** [rows, d] x [d, dFF] products in the step that are experts (dense FFNs of width dFF subtracted), per MoE layer. */
  expertsPerLayer: number;
  wallMs: number;
}

/** Warms the decoder at this batch (WARMUP_STEPS steps) and profiles the next PROFILED_STEPS steps. */
export async function warmAndProfile(
  model: Seq2Seq,
  cfg: ModelConfig,
  enc: ReturnType<Encoder['encode']>,
  dirs: Direction[],
): Promise<StepProfile> {
  const state = model.decoder.start(enc, dirs);
  let inputs = dirs.map(() => BOS);
  const step = () => {
    const logits = model.decoder.forward(
      model.embeddings,
      state,
      inputs.map((t) => [t]),
    );
    const best = tf.tidy(() => tf.logSoftmax(logits).argMax(1));
    inputs = Array.from(best.dataSync());
    tf.dispose([logits, best]);
  };
  try {
    for (let i = 0; i < WARMUP_STEPS; i++) step();
    // PROFILED_STEPS profiled steps; per kernel group the median over them (one step alone is noisy).
    const perStep: Record<string, number>[] = [];
    const walls: number[] = [];
    let ffnMatmuls = 0;
    for (let i = 0; i < PROFILED_STEPS; i++) {
      const t0 = performance.now();
      const profile = await tf.profile(() => step());
      walls.push(performance.now() - t0);
      const groups: Record<string, number> = {};
      for (const k of profile.kernels) {
        if (k.name === 'unnamed scope' || k.name.endsWith('__op')) continue; // scopes and composite ops repeat their kernels' time
        const g = kernelGroup(cfg, k.name, k.inputShapes);
        groups[g] = (groups[g] ?? 0) + (k.kernelTimeMs as number);
        const b = k.inputShapes[1];
        if (g === 'FFN/experts' && b !== null && b.length === 2 && b[0] === cfg.dModel && b[1] === cfg.dFF)
          ffnMatmuls++;
      }
      perStep.push(groups);
    }
    const names = [...new Set(perStep.flatMap((g) => Object.keys(g)))];
    const groups = Object.fromEntries(names.map((n) => [n, median(perStep.map((g) => g[n] ?? 0))]));
    const wallMs = median(walls);
    ffnMatmuls /= PROFILED_STEPS;
    const layers = Array.from({ length: cfg.decoderLayers }, (_, i) => i);
    const moeLayers = layers.filter((i) => model.decoder.experts[i] !== undefined).length;
    const denseFFNs = layers.filter((i) => {
      const wi = model.decoder.weights.get(`decoder.layers.${i}.ffn.wi`);
      return wi !== undefined && wi.shape[0] === cfg.dModel && wi.shape[1] === cfg.dFF;
    }).length;
    return { groups, expertsPerLayer: moeLayers === 0 ? 0 : (ffnMatmuls - denseFFNs) / moeLayers, wallMs };
  } finally {
    model.decoder.disposeState(state);
  }
}

export function matmulCeiling(config: string, m: number, k: number, n: number, reps: number): MatmulRow {
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 7) as tf.Tensor2D;
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 8) as tf.Tensor2D;
  for (let i = 0; i < 2; i++) tf.matMul(a, b).dispose(); // XNNPACK packs b once and caches it per tensor
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    times.push(performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  const ms = median(times);
  return { config, m, k, n, ms, gflops: (2 * m * k * n) / ms / 1e6, weightGBps: (4 * k * n) / ms / 1e6 };
}
