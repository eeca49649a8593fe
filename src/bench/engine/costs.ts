// The engine benchmark's models and workload: the shapes benchmarked, the four routings compared,
// and what one decoder step costs from the config alone (FLOPs, weight bytes, cache bytes), so that
// every measured ratio can be explained.
import { type ModelConfig, isMoeLayer } from '../../models/config.ts';
import type { Direction } from '../../models/transformer.ts';

export type Variant = 'dense' | 'token' | 'task' | 'task-extracted';
export const VARIANTS: readonly Variant[] = ['dense', 'token', 'task', 'task-extracted'];

export const SRC_LEN = 32;
export const OUT_LEN = 32;
export const BOS = 2;
export const EOS = 3;
export const LANGUAGES = [
  'en',
  'de',
  'fr',
  'es',
  'it',
  'pt',
  'nl',
  'cs',
  'ru',
  'zh',
  'ja',
  'hi',
  'fi',
  'tr',
  'ro',
  'lv',
];
export const DIRECTION: Direction = { source: 'en', target: 'de' };

/**
 * Timed runs per cell: more where runs are short, fewer where one run takes tens of seconds (at
 * B=64 one run per variant, 10-35 s each, interleaved), so the whole benchmark takes ~10 minutes
 * on a 2-core machine. --reps N (opts.reps) overrides.
 */
export function repsFor(batch: number, quick: boolean, override?: number): number {
  if (override !== undefined) return override;
  if (quick) return 3;
  return batch <= 1 ? 5 : batch <= 8 ? 3 : batch <= 32 ? 2 : 1;
}

/**
 * The routing study's shapes (docs/routing-study.md, models/routing-study/), benchmarked by name
 * only and never shrunk by --quick: study128 as trained, and study128-dense, whose dense variant is
 * the study's dense model (dFF 768 in every layer: the MoE's active FFN width, 512 + 2x512, per 2 layers).
 */
const STUDY_LANGUAGES = ['en', 'de', 'fr', 'ru', 'zh'];
const study128: ModelConfig = {
  vocabSize: 4000,
  dModel: 128,
  numHeads: 4,
  dFF: 512,
  encoderLayers: 2,
  decoderLayers: 2,
  moe: { numExperts: 8, topK: 2, every: 2 },
  routing: { encoder: 'token', decoder: 'target' },
  languages: STUDY_LANGUAGES,
  pairs: STUDY_LANGUAGES.slice(1).flatMap((l) => [`en-${l}`, `${l}-en`]),
  maxLength: 64,
  tokenizer: 'tokenizer.model',
};
const STUDY_CONFIGS: Record<string, ModelConfig> = { study128, 'study128-dense': { ...study128, dFF: 768 } };

/** The shapes benchmarked. `quick` shrinks them: 2+2 layers, a quarter of the experts, vocabulary 8000. */
export function benchConfigs(quick: boolean): Record<string, ModelConfig> {
  const base = (d: number, heads: number, dFF: number, experts: number): ModelConfig => ({
    vocabSize: quick ? 8000 : 32000,
    dModel: d,
    numHeads: heads,
    dFF,
    encoderLayers: quick ? 2 : 6,
    decoderLayers: quick ? 2 : 6,
    moe: { numExperts: quick ? experts / 4 : experts, topK: 2, every: 2 },
    routing: { encoder: 'token', decoder: 'target' },
    languages: LANGUAGES,
    pairs: LANGUAGES.slice(1).flatMap((l) => [`en-${l}`, `${l}-en`]),
    maxLength: 64,
    tokenizer: 'tokenizer.model',
  });
  // e128 keeps the head size of wmt32 (64), so 4 heads on dModel 256.
  return { wmt32: base(512, 8, 2048, 32), e128: base(256, 4, 1024, 128), ...STUDY_CONFIGS };
}

/** The configs a run benchmarks unless --configs names others. */
export const DEFAULT_CONFIGS = ['wmt32', 'e128'];

export function variantConfig(cfg: ModelConfig, v: Variant): ModelConfig {
  if (v === 'dense') return { ...cfg, routing: { encoder: 'dense', decoder: 'dense' } };
  if (v === 'token') return { ...cfg, routing: { encoder: 'token', decoder: 'token' } };
  return { ...cfg, routing: { encoder: 'token', decoder: 'target' } };
}

/**
 * Expected number of distinct experts that `tokens` rows touch when each picks k of E experts
 * uniformly: an expert escapes one row with probability 1 - k/E, all of them with (1 - k/E)^B.
 */
export function expectedDistinctExperts(experts: number, k: number, tokens: number): number {
  return experts * (1 - Math.pow(1 - k / experts, tokens));
}

export interface StepCost {
  /** FLOPs (2 per multiply-add) of one decoder step per target token: projections, attention, FFN/experts, output projection. */
  flopsPerToken: number;
  /** The cross-attention K/V projection of the source, done once in Decoder.start, per target token. */
  startFlopsPerToken: number;
  /** Encoder FLOPs per source token (= per target token here: 32 in, 32 out). */
  encoderFlopsPerToken: number;
  /** Weight bytes (float32) one decoder step reads for the whole batch. */
  weightBytesPerStep: number;
  weightBytesPerToken: number;
  /** KV-cache bytes one step reads per sentence (self cache at the mean length, cross cache). */
  cacheBytesPerToken: number;
  /** Experts read per MoE layer per step (0 without experts). */
  expertsPerLayer: number;
}

/** Cost of one decoder step at batch B, from the config alone. */
export function stepCost(cfg: ModelConfig, v: Variant, batch: number): StepCost {
  const { dModel: d, dFF, vocabSize: V } = cfg;
  const { numExperts: E, topK: k } = cfg.moe;
  const vc = variantConfig(cfg, v);
  const meanSelf = (1 + OUT_LEN) / 2; // keys in the self-attention cache, averaged over the steps
  let macs = 0;
  let weights = 0;
  let cache = 0;
  let expertsPerLayer = 0;
  for (let i = 0; i < cfg.decoderLayers; i++) {
    macs += 4 * d * d + 2 * meanSelf * d; // self: q, k, v, o projections; q.K and p.V
    macs += 2 * d * d + 2 * SRC_LEN * d; // cross: q, o projections (the source's K, V come from start)
    weights += 6 * d * d + 6 * d; // + three layer norms
    cache += 2 * meanSelf * d + 2 * SRC_LEN * d;
    if (!isMoeLayer(vc, 'decoder', i)) {
      macs += 2 * d * dFF;
      weights += 2 * d * dFF;
    } else if (v === 'token') {
      expertsPerLayer = expectedDistinctExperts(E, k, batch);
      macs += d * E + k * 2 * d * dFF; // gate, then k experts per token
      weights += d * E + expertsPerLayer * 2 * d * dFF;
    } else {
      // task: one task in the batch, so its k experts (the gate ran once, in start); extracted: one FFN of width k*dFF.
      expertsPerLayer = k;
      macs += k * 2 * d * dFF;
      weights += k * 2 * d * dFF;
    }
  }
  macs += d * V; // output projection (the tied embedding)
  weights += 2 * d + d * V;
  let encMacs = 0;
  for (let i = 0; i < cfg.encoderLayers; i++) {
    encMacs += 4 * d * d + 2 * SRC_LEN * d;
    encMacs += isMoeLayer(vc, 'encoder', i) ? d * E + k * 2 * d * dFF : 2 * d * dFF;
  }
  return {
    flopsPerToken: 2 * macs,
    startFlopsPerToken: (2 * cfg.decoderLayers * 2 * d * d * SRC_LEN) / OUT_LEN,
    encoderFlopsPerToken: 2 * encMacs,
    weightBytesPerStep: 4 * weights,
    weightBytesPerToken: (4 * weights) / batch,
    cacheBytesPerToken: 4 * cache,
    expertsPerLayer,
  };
}
