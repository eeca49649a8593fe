// Engine benchmark: end-to-end decoding throughput (encode + greedy decode of a fixed length) of
// one model shape under four routings, with random weights, side by side:
//   dense           Dense/Dense, same shape, no experts;
//   token           Token/Token, the whole model;
//   task            Token/Target, the whole model (every sentence of the batch goes en->de);
//   task-extracted  Token/Target, Seq2Seq.loadSubnetwork for en->de: the decoder is the plain dense
//                   stack with each MoE layer's top-k experts folded into one FFN of width k*dFF.
// Beside the measurements it prints what a decoder step costs per target token (FLOPs, weight
// bytes, cache bytes) from the config alone, the plain 2-D matMul ceiling of the backend, and a
// per-kernel profile of decoder steps, so every ratio can be explained. Results and their
// explanation: bench/results/engine.md.
//
//   node --import tsx src/bench/engine.ts [--quick] [--json FILE] [--configs wmt32,e128] [--batch 1,8]
//                                     [--variants token,task-extracted] [--reps N]
//
// Per config, three groups each run in a child process of its own (a fresh wasm heap), driven by
// the parent request by request so that the timed runs of all variants interleave: dense; token;
// task + task-extracted. On wasm the full 450M-parameter Token/Token model plus XNNPACK's packed
// copy of every weight matrix it multiplies nearly fills the 4 GiB heap, which never shrinks, so
// nothing else may share its process (and it may still die; the group is then rebuilt and the run retried).
import { type ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from '../models/checkpoint.ts';
import { type ModelConfig, type TensorShapes, isMoeLayer, isTaskRouting, tensorComponent, tensorShapes } from '../models/config.ts';
import { decode } from '../models/decoding.ts';
import type { Weights } from '../models/layers.ts';
import { Seq2Seq } from '../models/model.ts';
import { Decoder, type Direction, Embeddings, Encoder } from '../models/transformer.ts';
import { median } from './stats.ts';

export type Variant = 'dense' | 'token' | 'task' | 'task-extracted';
export const VARIANTS: readonly Variant[] = ['dense', 'token', 'task', 'task-extracted'];

export interface BenchRow {
  config: string;
  variant: Variant;
  batchSize: number;
  /** Target tokens per second, end to end (encode + decode), median of the timed runs. */
  tokensPerSecond: number;
  /** Parameters of the decoder component (not the shared embedding). */
  decoderParams: number;
  /** Bytes the model's tensors hold on the device (embeddings, encoder, decoder). */
  residentBytes: number;
  /** Median seconds of one decode() call, and every timed run. */
  seconds: number;
  runs: number[];
  /** From the fastest run (interference from other processes only ever slows a run down). */
  bestTokensPerSecond: number;
  /** tokensPerSecond / token's at the same config and batch size. */
  ratioToToken: number;
  /** Seconds of the encoder alone at this batch (one run); the rest of `seconds` is the decoder. */
  encodeSeconds: number;
  /** (seconds - encodeSeconds) / 32: one decoder step, with Decoder.start and the argmax spread over the steps. */
  stepSeconds: number;
  /** Target tokens per second of the decoder alone: batch / stepSeconds. */
  decodeTokensPerSecond: number;
  /** Analytic cost of a decoder step (see stepCost). */
  flopsPerToken: number;
  weightBytesPerStep: number;
  weightBytesPerToken: number;
  cacheBytesPerToken: number;
  /** Experts one step reads per MoE layer: expected under uniform routing, and counted in the profiled steps (mean). */
  expertsPerLayer: number;
  expertsPerLayerMeasured: number;
  /** Decoder-step FLOP/s achieved (flopsPerToken * batch / stepSeconds) and the 2-D matMul [B,d]x[d,dFF] ceiling. */
  achievedGflops: number;
  matmulCeilingGflops: number;
  /** Milliseconds per kernel group in a profiled decoder step (median over the profiled steps). */
  profile: Record<string, number>;
}

export interface MatmulRow {
  config: string;
  m: number;
  k: number;
  n: number;
  ms: number;
  gflops: number;
  weightGBps: number;
}

export interface EngineBenchOptions {
  json?: string;
  quick?: boolean;
  log?: (s: string) => void;
  /** Overrides for experiments: batch sizes, timed runs per cell, configs, variants. */
  batchSizes?: number[];
  reps?: number;
  configs?: string[];
  variants?: Variant[];
}

export const SRC_LEN = 32;
export const OUT_LEN = 32;
const BOS = 2;
const EOS = 3;
const LANGUAGES = ['en', 'de', 'fr', 'es', 'it', 'pt', 'nl', 'cs', 'ru', 'zh', 'ja', 'hi', 'fi', 'tr', 'ro', 'lv'];
export const DIRECTION: Direction = { source: 'en', target: 'de' };
/** Decoder steps of each variant's warm-up at every batch size. */
const WARMUP_STEPS = 2;
/** Decoder steps profiled after the warm-up (kernel times: median per group). */
const PROFILED_STEPS = 3;
/** How often a group's process may die and be rebuilt per config before its remaining cells are given up. */
const MAX_RESTARTS = 3;
/**
 * Scale of the decoder's cross-attention projections over init.ts's. With plain random weights the
 * residual stream is dominated by the input token's (tied) embedding, greedy decoding repeats BOS
 * for every sentence, and token routing then sends the whole batch to the same few experts (5-8 of
 * 32 at B=64 instead of the ~31 a load-balanced model touches). Scaling cross-attention makes each
 * sentence's state depend on its source, so outputs and token routes spread out. It changes no
 * shape and no amount of work.
 */
const CROSS_ATTENTION_SCALE = 4;

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
  return { wmt32: base(512, 8, 2048, 32), e128: base(256, 4, 1024, 128) };
}

export function variantConfig(cfg: ModelConfig, v: Variant): ModelConfig {
  if (v === 'dense') return { ...cfg, routing: { encoder: 'dense', decoder: 'dense' } };
  if (v === 'token') return { ...cfg, routing: { encoder: 'token', decoder: 'token' } };
  return { ...cfg, routing: { encoder: 'token', decoder: 'target' } };
}

// ---------------------------------------------------------------------------------------------
// Analytic costs

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

// ---------------------------------------------------------------------------------------------
// Helpers

const CHOICE_OF_PACKAGE: Record<string, string> = {
  '@tensorflow/tfjs-node-gpu': 'gpu',
  '@tensorflow/tfjs-node': 'node',
  '@tensorflow/tfjs-backend-wasm': 'wasm',
  '@tensorflow/tfjs-backend-cpu': 'cpu',
};

/** Uses the backend already initialised; otherwise TASKMOE_BACKEND or wasm. Returns its choice (gpu|node|wasm|cpu) and a description. */
export async function ensureBackend(log: (s: string) => void): Promise<{ choice: string; description: string }> {
  const { backendInfo, initBackend } = await import('../backend/index.ts');
  const info = backendInfo() ?? (await initBackend({ force: process.env.TASKMOE_BACKEND || 'wasm', log }));
  return { choice: CHOICE_OF_PACKAGE[info.package] ?? 'wasm', description: `${info.name} (${info.package})` };
}

/** xorshift128+ in [0, 1). */
function rng(seed: number): () => number {
  let s0 = (seed * 2654435761) >>> 0 || 1;
  let s1 = (seed ^ 0x9e3779b9) >>> 0 || 2;
  return () => {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return ((s0 + s1) >>> 0) / 4294967296;
  };
}

export type HostWeights = Map<string, { shape: number[]; data: Float32Array }>;

/**
 * Random weights on the host with the scales of src/models/init.ts (projections of variance
 * 1/fan_in, embeddings 1/d, task embeddings 1, layer norms 1 and 0), drawn uniformly, which is
 * far faster than tf.randomNormal for ~450M parameters; the decoder's cross-attention is scaled by
 * CROSS_ATTENTION_SCALE.
 */
export function hostWeights(cfg: ModelConfig, seed: number, crossScale = CROSS_ATTENTION_SCALE): HostWeights {
  const out: HostWeights = new Map();
  let x = (seed * 2654435761) >>> 0 || 1; // xorshift32, inlined: ~150M values/s
  for (const [name, shape] of tensorShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('.g')) data.fill(1);
    else if (!name.endsWith('.b')) {
      let std = name === 'embed' ? 1 / Math.sqrt(cfg.dModel) : name.endsWith('.taskEmbed') ? 1 : 1 / Math.sqrt(shape[0]);
      if (/^decoder\.layers\.\d+\.crossAttn\.w/.test(name)) std *= crossScale;
      const a = 2 * Math.sqrt(3) * std; // uniform on [-sqrt(3) std, sqrt(3) std]
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        data[i] = ((x >>> 0) / 4294967296 - 0.5) * a;
      }
    }
    out.set(name, { shape, data });
  }
  return out;
}

export function toDevice(host: HostWeights, names: Iterable<string>): Weights {
  const w: Weights = new Map();
  for (const name of names) {
    const h = host.get(name);
    if (h === undefined) throw new Error(`no host weights for ${name}`);
    w.set(name, tf.tensor(h.data, h.shape, 'float32'));
  }
  return w;
}

function sources(batch: number, vocab: number, seed: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: SRC_LEN }, () => 4 + Math.floor(r() * (vocab - 4))));
}

function decoderParams(model: Seq2Seq): number {
  let n = 0;
  for (const [name, t] of model.decoder.weights) if (tensorComponent(name) === 'decoder') n += t.size;
  return n;
}

/** Current size of the wasm heap (it grows, never shrinks; 4 GiB at most), or 0 on other backends. */
function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.byteLength ?? 0;
}

const fmt = (x: number, digits = 1) => x.toFixed(digits);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const mparams = (n: number) => `${(n / 1e6).toFixed(2)}M`;

// ---------------------------------------------------------------------------------------------
// Building the models

/** Tensors readComponent reads only to route or fold (and then disposes): a task-routed component's task embedding, gates and experts. */
function foldedAway(cfg: ModelConfig, name: string): boolean {
  const c = tensorComponent(name);
  return c !== 'embeddings' && isTaskRouting(cfg.routing[c]) && (name.endsWith('.taskEmbed') || name.endsWith('.ffn.gate') || name.includes('.ffn.experts.'));
}

/**
 * A TensorSource over device tensors that hands out the tensors themselves, except the ones
 * readComponent disposes after folding (copied). Handing out clone()s instead would duplicate the
 * whole shared encoder and the embeddings (~1 GB for wmt32): on the wasm backend clone() is a full
 * copy (its Identity kernel copies the buffer).
 */
class SharedSource implements TensorSource {
  constructor(readonly config: ModelConfig, private readonly weights: Weights) {}

  get shapes(): TensorShapes {
    return new Map([...this.weights].map(([n, t]) => [n, t.shape]));
  }

  async read(names: Iterable<string>): Promise<Map<string, tf.Tensor>> {
    return new Map([...names].map((n) => {
      const t = this.weights.get(n);
      if (t === undefined) throw new Error(`no tensor "${n}"`);
      return [n, foldedAway(this.config, n) ? t.clone() : t];
    }));
  }
}

/**
 * The models of one group, from the same random weights for every MoE variant, sharing tensors
 * (not copies): one Embeddings and one Encoder for all (every MoE variant has the same token-routed
 * encoder, as a server shares it), and the decoders' common tensors. The extracted decoder is
 * Seq2Seq.loadSubnetwork's, over a SharedSource of the same weights. Each model's `.bytes` still
 * counts everything it uses, as if it stood alone; XNNPACK packs each shared weight once.
 */
export async function buildGroup(cfg: ModelConfig, variants: readonly Variant[], host: HostWeights): Promise<Map<Variant, Seq2Seq>> {
  const models = new Map<Variant, Seq2Seq>();
  if (variants.includes('dense')) {
    const dc = variantConfig(cfg, 'dense');
    models.set('dense', Seq2Seq.fromWeights(dc, toDevice(host, tensorShapes(dc).keys())));
    return models;
  }
  const taskCfg = variantConfig(cfg, 'task');
  const shared = toDevice(host, tensorShapes(taskCfg).keys());
  const pick = (c: ModelConfig, prefix: string): Weights =>
    new Map([...tensorShapes(c).keys()].filter((n) => n.startsWith(prefix)).map((n) => [n, shared.get(n)!]));
  const emb = new Embeddings(taskCfg, pick(taskCfg, 'embed'));
  const enc = new Encoder(taskCfg, pick(taskCfg, 'encoder.'));
  for (const v of variants) {
    const vc = variantConfig(cfg, v);
    if (v === 'task-extracted') {
      const sub = await Seq2Seq.loadSubnetwork(new SharedSource(taskCfg, shared), DIRECTION);
      // Keep its decoder; its embeddings' table and its encoder's tensors are the shared ones.
      tf.dispose([sub.embeddings.tableT, sub.embeddings.positions]);
      models.set(v, new Seq2Seq(sub.config, emb, enc, sub.decoder));
    } else {
      models.set(v, new Seq2Seq(vc, emb, enc, new Decoder(vc, pick(vc, 'decoder.'))));
    }
  }
  const used = new Set([...models.values()].flatMap((m) => [...m.weights.values()]));
  for (const t of shared.values()) if (!used.has(t)) t.dispose(); // e.g. the task embedding when only token runs
  return models;
}

// ---------------------------------------------------------------------------------------------
// Measuring one group (in its own process)

interface GroupJob {
  config: string;
  quick: boolean;
  variants: Variant[];
}

function timeDecode(model: Seq2Seq, src: number[][], steps: number): number {
  const dirs = src.map(() => DIRECTION);
  const t0 = performance.now();
  const out = decode(model, src, dirs, { bosId: BOS, eosId: EOS, ignoreEos: true, maxLength: steps });
  const dt = (performance.now() - t0) / 1000;
  if (out.length !== src.length || out.some((h) => h[0].tokens.length !== steps)) throw new Error('decode did not produce the fixed length');
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

interface StepProfile {
  groups: Record<string, number>;
  /** [rows, d] x [d, dFF] products in the step that are experts (dense FFNs of width dFF subtracted), per MoE layer. */
  expertsPerLayer: number;
  wallMs: number;
}

/** Warms the decoder at this batch (WARMUP_STEPS steps) and profiles the next PROFILED_STEPS steps. */
async function warmAndProfile(model: Seq2Seq, cfg: ModelConfig, enc: ReturnType<Encoder['encode']>, dirs: Direction[]): Promise<StepProfile> {
  const state = model.decoder.start(enc, dirs);
  let inputs = dirs.map(() => BOS);
  const step = () => {
    const logits = model.decoder.forward(model.embeddings, state, inputs.map((t) => [t]));
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
        if (g === 'FFN/experts' && b !== null && b.length === 2 && b[0] === cfg.dModel && b[1] === cfg.dFF) ffnMatmuls++;
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

interface ModelInfo {
  variant: Variant;
  decoderParams: number;
  residentBytes: number;
  plainDecoder: boolean;
}

type RequestBody =
  | { cmd: 'jit'; batch: number }
  | { cmd: 'prepare'; batch: number }
  | { cmd: 'run'; batch: number; variant: Variant }
  | { cmd: 'finish' };
type Request = RequestBody & { id: number };

interface Prepared {
  encodeSeconds: number;
  profiles: Partial<Record<Variant, StepProfile>>;
  heapBytes: number;
}

type ChildMessage =
  | { type: 'log'; line: string }
  | { type: 'ready'; models: ModelInfo[] }
  | { type: 'reply'; id: number; data: unknown }
  | { type: 'error'; id?: number; message: string };

/**
 * The child side: builds one group's models, then serves the parent's requests one at a time
 * (jit: one untimed decode() per model; prepare: one timed encode, then per model a warm-up of
 * WARMUP_STEPS decoder steps and PROFILED_STEPS profiled ones; run: one timed decode(); finish: dispose).
 */
async function serveGroup(job: GroupJob, send: (m: ChildMessage) => void): Promise<void> {
  const log = (line: string) => send({ type: 'log', line });
  const backend = await ensureBackend(log);
  const cfg = benchConfigs(job.quick)[job.config];
  const baseline = tf.memory().numTensors;
  let t0 = performance.now();
  const dense = job.variants.includes('dense');
  const host = hostWeights(variantConfig(cfg, dense ? 'dense' : 'task'), dense ? 2 : 1);
  const hostSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const models = await buildGroup(cfg, job.variants, host);
  host.clear();
  log(`  [${job.config} ${job.variants.join(', ')}] on ${backend.description}: random weights ${hostSeconds.toFixed(1)} s, built ${((performance.now() - t0) / 1000).toFixed(1)} s, heap ${mib(wasmHeapBytes())}`);
  const infos: ModelInfo[] = [...models].map(([variant, m]) => ({
    variant, decoderParams: decoderParams(m), residentBytes: m.bytes, plainDecoder: m.decoder.experts.every((e) => e === undefined),
  }));
  const first = models.values().next().value as Seq2Seq;
  const handle = async (req: Request): Promise<unknown> => {
    if (req.cmd === 'finish') {
      for (const model of models.values()) model.dispose(); // shared tensors: disposing one twice is a no-op
      return { tensorsLeft: tf.memory().numTensors - baseline, heapBytes: wasmHeapBytes() };
    }
    const src = sources(req.batch, cfg.vocabSize, 1000 + req.batch);
    if (req.cmd === 'run') return timeDecode(models.get(req.variant)!, src, OUT_LEN);
    if (req.cmd === 'jit') {
      for (const model of models.values()) timeDecode(model, src, OUT_LEN);
      return null;
    }
    const dirs = src.map(() => DIRECTION);
    const t = performance.now();
    const enc = first.encoder.encode(first.embeddings, src, dirs); // every model of the group has this encoder
    enc.out.dataSync();
    const encodeSeconds = (performance.now() - t) / 1000;
    const profiles: Partial<Record<Variant, StepProfile>> = {};
    try {
      for (const [v, model] of models) profiles[v] = await warmAndProfile(model, cfg, enc, dirs);
    } finally {
      enc.out.dispose();
    }
    return { encodeSeconds, profiles, heapBytes: wasmHeapBytes() } satisfies Prepared;
  };
  process.on('message', (req: Request) => {
    handle(req).then(
      (data) => {
        send({ type: 'reply', id: req.id, data });
        if (req.cmd === 'finish') process.disconnect();
      },
      (err: Error) => send({ type: 'error', id: req.id, message: err.stack ?? String(err) }),
    );
  });
  send({ type: 'ready', models: infos });
}

/** The parent side of one group: a child process with a fresh wasm heap, driven request by request. */
class GroupClient {
  private child?: ChildProcess;
  private nextId = 1;
  private pending = new Map<number, { resolve: (d: unknown) => void; reject: (e: Error) => void }>();
  models: ModelInfo[] = [];
  failure?: string;
  /** Why each earlier child died (it was restarted). */
  readonly crashes: string[] = [];

  constructor(readonly job: GroupJob, private readonly log: (s: string) => void) {}

  get alive(): boolean {
    return this.failure === undefined && this.child !== undefined;
  }

  /** Replaces a failed child with a fresh one (same weights, rebuilt). */
  async restart(backendChoice: string): Promise<void> {
    if (this.failure !== undefined) this.crashes.push(this.failure);
    this.failure = undefined;
    this.models = [];
    await this.start(backendChoice);
  }

  start(backendChoice: string): Promise<void> {
    return new Promise((resolve) => {
      const child = fork(fileURLToPath(import.meta.url), [], {
        execArgv: process.execArgv,
        env: { ...process.env, TASKMOE_BACKEND: backendChoice, TASKMOE_BENCH_JOB: JSON.stringify(this.job) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      this.child = child;
      child.on('message', (m: ChildMessage) => {
        if (this.child !== child) return; // a replaced child
        if (m.type === 'log') this.log(m.line);
        else if (m.type === 'ready') {
          this.models = m.models;
          resolve();
        } else if (m.type === 'reply') {
          this.pending.get(m.id)?.resolve(m.data);
          this.pending.delete(m.id);
        } else this.fail(m.message.split('\n').slice(0, 2).join(' '));
      });
      child.on('error', (err) => {
        if (this.child === child) this.fail(err.message);
      });
      child.on('exit', (code, signal) => {
        if (this.child === child && (this.pending.size > 0 || this.models.length === 0)) this.fail(`exit code ${code}${signal ? `, signal ${signal}` : ''}`);
        resolve();
      });
    });
  }

  private fail(why: string): void {
    if (this.failure === undefined) {
      this.failure = why;
      this.log(`  FAILED: ${this.job.config} ${this.job.variants.join(', ')}: ${why}`);
    }
    for (const p of this.pending.values()) p.reject(new Error(why));
    this.pending.clear();
    this.child?.kill();
  }

  /** Sends a request and waits for its reply; undefined once the child has failed. */
  async call<T>(req: RequestBody): Promise<T | undefined> {
    if (!this.alive) return undefined;
    const id = this.nextId++;
    const reply = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child!.send({ ...req, id });
    try {
      return (await reply) as T;
    } catch {
      return undefined;
    }
  }
}

function matmulCeiling(config: string, m: number, k: number, n: number, reps: number): MatmulRow {
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

// ---------------------------------------------------------------------------------------------
// The benchmark

export async function benchEngine(opts: EngineBenchOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const quick = opts.quick ?? false;
  const backend = await ensureBackend(log);
  const batchSizes = [...(opts.batchSizes ?? (quick ? [1, 8] : [1, 8, 32, 64]))].sort((a, b) => a - b);
  const all = benchConfigs(quick);
  const configNames = opts.configs ?? Object.keys(all);
  const variants = VARIANTS.filter((v) => (opts.variants ?? VARIANTS).includes(v));
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  const jitBatch = Math.min(8, batchSizes[batchSizes.length - 1]);
  log(`engine benchmark on ${backend.description}${quick ? ' (quick)' : ''}, ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  log(`source ${SRC_LEN} tokens, ${OUT_LEN} target tokens (EOS ignored), greedy, en->de for every sentence; ` +
    `timed runs per cell (median): ${batchSizes.map((b) => `B=${b}: ${repsFor(b, quick, opts.reps)}`).join(', ')}, all variants interleaved run by run`);
  log(`per config: groups dense | token | task + task-extracted, each in its own process; one untimed decode() per model at B=${jitBatch}, ` +
    `then per batch size (largest first) one timed encode and a warm-up of ${WARMUP_STEPS} decoder steps + ${PROFILED_STEPS} profiled steps per model, then the timed runs`);
  const rows: BenchRow[] = [];
  const matmuls: MatmulRow[] = [];
  const failures: string[] = [];
  let tensorsLeft = 0;
  const baseline = tf.memory().numTensors;
  for (const name of configNames) {
    const cfg = all[name];
    if (cfg === undefined) throw new Error(`unknown config ${name}; have ${Object.keys(all).join(', ')}`);
    log(`\n== ${name}: dModel ${cfg.dModel}, dFF ${cfg.dFF}, ${cfg.numHeads} heads, ${cfg.encoderLayers}+${cfg.decoderLayers} layers, ` +
      `${cfg.moe.numExperts} experts in every ${cfg.moe.every}nd layer (top-${cfg.moe.topK}), vocabulary ${cfg.vocabSize} [${elapsed()}]`);
    const ceiling = new Map<number, MatmulRow>();
    for (const b of batchSizes) {
      const ffnRow = matmulCeiling(name, b, cfg.dModel, cfg.dFF, b >= 32 ? 15 : 41);
      ceiling.set(b, ffnRow);
      matmuls.push(ffnRow, matmulCeiling(name, b, cfg.dModel, cfg.vocabSize, b >= 32 ? 7 : 21));
    }
    // token alone: the whole wmt32 Token/Token model plus XNNPACK's packed copies nearly fills wasm's 4 GiB.
    const clients = [['dense'], ['token'], ['task', 'task-extracted']]
      .map((g) => variants.filter((v) => g.includes(v)))
      .filter((g) => g.length > 0)
      .map((g) => new GroupClient({ config: name, quick, variants: g }, log));
    await Promise.all(clients.map((c) => c.start(backend.choice)));
    const infos = new Map(clients.flatMap((c) => c.models.map((m) => [m.variant, m] as const)));
    for (const m of infos.values()) {
      log(`  ${m.variant}: decoder ${mparams(m.decoderParams)} params, resident ${mib(m.residentBytes)}, decoder has no experts (plain dense path): ${m.plainDecoder}`);
      if (m.variant === 'task-extracted' && !m.plainDecoder) throw new Error('the extracted decoder still holds experts');
    }
    for (const c of clients) await c.call({ cmd: 'jit', batch: jitBatch });
    log(`  built and warmed up [${elapsed()}]`);
    /**
     * A call that survives the child dying (the full Token/Token model runs at the edge of wasm's
     * 4 GiB): the group is rebuilt in a fresh process, warmed up again (at the JIT batch and at
     * `batch`), and the request retried, at most MAX_RESTARTS times per group and config.
     */
    const call = async <T>(c: GroupClient, body: RequestBody, batch: number): Promise<T | undefined> => {
      for (;;) {
        const r = await c.call<T>(body);
        if (r !== undefined || body.cmd === 'finish' || c.crashes.length >= MAX_RESTARTS) return r;
        log(`  restarting ${c.job.variants.join(', ')} after: ${c.failure} [${elapsed()}]`);
        await c.restart(backend.choice);
        await c.call({ cmd: 'jit', batch: jitBatch });
        if (body.cmd === 'run') await c.call({ cmd: 'prepare', batch });
      }
    };
    const cells: BenchRow[] = [];
    for (const b of [...batchSizes].reverse()) {
      const prepared = new Map<GroupClient, Prepared>();
      for (const c of clients) {
        const p = await call<Prepared>(c, { cmd: 'prepare', batch: b }, b);
        if (p !== undefined) prepared.set(c, p);
      }
      const runs = new Map<Variant, number[]>();
      for (let r = 0; r < repsFor(b, quick, opts.reps); r++) {
        for (const c of clients) {
          for (const m of c.models) {
            const seconds = await call<number>(c, { cmd: 'run', batch: b, variant: m.variant }, b);
            if (seconds !== undefined) runs.set(m.variant, [...(runs.get(m.variant) ?? []), seconds]);
          }
        }
      }
      for (const c of clients) {
        const p = prepared.get(c);
        for (const m of c.models) {
          const times = runs.get(m.variant);
          const prof = p?.profiles[m.variant];
          if (p === undefined || prof === undefined || times === undefined) continue;
          const seconds = median(times);
          const cost = stepCost(cfg, m.variant, b);
          const stepSeconds = Math.max(1e-9, seconds - p.encodeSeconds) / OUT_LEN;
          const row: BenchRow = {
            config: name, variant: m.variant, batchSize: b,
            tokensPerSecond: (b * OUT_LEN) / seconds,
            decoderParams: m.decoderParams, residentBytes: m.residentBytes,
            seconds, runs: times, bestTokensPerSecond: (b * OUT_LEN) / Math.min(...times), ratioToToken: NaN,
            encodeSeconds: p.encodeSeconds, stepSeconds, decodeTokensPerSecond: b / stepSeconds,
            flopsPerToken: cost.flopsPerToken, weightBytesPerStep: cost.weightBytesPerStep, weightBytesPerToken: cost.weightBytesPerToken,
            cacheBytesPerToken: cost.cacheBytesPerToken, expertsPerLayer: cost.expertsPerLayer, expertsPerLayerMeasured: prof.expertsPerLayer,
            achievedGflops: (b * cost.flopsPerToken) / stepSeconds / 1e9, matmulCeilingGflops: ceiling.get(b)!.gflops,
            profile: prof.groups,
          };
          cells.push(row);
          const kernelMs = Object.values(prof.groups).reduce((x, y) => x + y, 0);
          const breakdown = Object.entries(prof.groups).sort((x, y) => y[1] - x[1]).filter(([, ms]) => ms >= 0.05 * kernelMs)
            .map(([g, ms]) => `${g} ${ms.toFixed(1)}`).join(', ');
          log(`  ${m.variant.padEnd(14)} B=${String(b).padStart(2)}: ${fmt(row.tokensPerSecond).padStart(6)} tok/s  runs ${times.map((t) => t.toFixed(2)).join(' ')} s, ` +
            `encode ${p.encodeSeconds.toFixed(2)} s, step ${(stepSeconds * 1000).toFixed(1)} ms  [heap ${mib(p.heapBytes)}]`);
          log(`      profiled step (median of ${PROFILED_STEPS}) ${prof.wallMs.toFixed(1)} ms, kernels ${kernelMs.toFixed(1)} ms: ${breakdown}` +
            (cost.expertsPerLayer > 0 && m.variant === 'token' ? `; experts/MoE layer ${prof.expertsPerLayer.toFixed(1)} (uniform routing: ${cost.expertsPerLayer.toFixed(1)})` : ''));
        }
      }
      log(`  B=${b} done [${elapsed()}, load ${os.loadavg()[0].toFixed(1)}]`);
    }
    for (const c of clients) {
      const done = await c.call<{ tensorsLeft: number; heapBytes: number }>({ cmd: 'finish' });
      if (done !== undefined) {
        tensorsLeft += done.tensorsLeft;
        log(`  disposed ${c.job.variants.join(', ')}: ${done.tensorsLeft === 0 ? 'tensor count back to its baseline' : `WARNING: ${done.tensorsLeft} tensors left`} (peak heap ${mib(done.heapBytes)})`);
      }
      for (const why of c.crashes) failures.push(`${name} ${c.job.variants.join(', ')}: crashed and restarted: ${why}`);
      if (c.failure !== undefined) failures.push(`${name} ${c.job.variants.join(', ')}: gave up: ${c.failure}`);
    }
    for (const r of cells) {
      const tok = cells.find((x) => x.variant === 'token' && x.batchSize === r.batchSize);
      r.ratioToToken = tok ? r.tokensPerSecond / tok.tokensPerSecond : NaN;
    }
    cells.sort((a, b) => VARIANTS.indexOf(a.variant) - VARIANTS.indexOf(b.variant) || a.batchSize - b.batchSize);
    rows.push(...cells);
    log('');
    log(formatCosts(cfg, name, variants, batchSizes));
    log('');
    log(formatMatmuls(matmuls.filter((m) => m.config === name)));
    log('');
    log(formatRows(cells));
  }
  for (const f of failures) log(`process failures: ${f}`);
  const leftHere = tf.memory().numTensors - baseline;
  log(`tensors: ${leftHere} left in this process, ${tensorsLeft} left in the benchmark processes after disposing every model; total time ${elapsed()}`);
  if (opts.json !== undefined) {
    fs.mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
    fs.writeFileSync(opts.json, JSON.stringify({ backend: backend.description, quick, batchSizes, rows, matmuls, failures }, null, 2) + '\n');
    log(`wrote ${opts.json}`);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function table(cells: string[][]): string {
  const widths = cells[0].map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const line = (r: string[]) => '| ' + r.map((x, c) => x.padEnd(widths[c])).join(' | ') + ' |';
  return [line(cells[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

export function formatRows(rows: BenchRow[]): string {
  const out: string[] = [];
  for (const config of [...new Set(rows.map((r) => r.config))]) {
    const rs = rows.filter((r) => r.config === config);
    const batches = [...new Set(rs.map((r) => r.batchSize))].sort((a, b) => a - b);
    const variants = VARIANTS.filter((v) => rs.some((r) => r.variant === v));
    const cell = (v: Variant, b: number) => rs.find((x) => x.variant === v && x.batchSize === b);
    out.push(`### ${config}: end-to-end target tokens/s, median of the timed runs (x = ratio to token); in brackets the fastest run's`);
    out.push('');
    out.push(table([
      ['variant', 'decoder params', 'resident', ...batches.map((b) => `B=${b}`)],
      ...variants.map((v) => {
        const r0 = rs.find((r) => r.variant === v)!;
        return [v, mparams(r0.decoderParams), mib(r0.residentBytes), ...batches.map((b) => {
          const r = cell(v, b);
          if (r === undefined) return 'failed';
          const tok = cell('token', b);
          const ratio = (x: number, y: number | undefined) => (y === undefined ? '' : ` ${(x / y).toFixed(2)}x`);
          return `${fmt(r.tokensPerSecond)}${ratio(r.tokensPerSecond, tok?.tokensPerSecond)} [${fmt(r.bestTokensPerSecond)}${ratio(r.bestTokensPerSecond, tok?.bestTokensPerSecond)}]`;
        })];
      }),
    ]));
    out.push('');
    out.push(`### ${config}: decoder alone (end-to-end minus one timed encode) and the profiled steps (median ms per kernel group)`);
    out.push('');
    out.push(table([
      ['variant', 'B', 'encode s', 'step ms', 'decoder tok/s (x token)', 'achieved GFLOP/s (2-D ceiling)', 'experts/layer counted (uniform)', 'profiled step: top kernel groups, ms'],
      ...rs.map((r) => {
        const tok = cell('token', r.batchSize);
        const top = Object.entries(r.profile).sort((x, y) => y[1] - x[1]).slice(0, 4).map(([g, ms]) => `${g} ${ms.toFixed(1)}`).join(', ');
        return [r.variant, `${r.batchSize}`, fmt(r.encodeSeconds, 2), fmt(r.stepSeconds * 1000),
          `${fmt(r.decodeTokensPerSecond)}${tok ? ` (${(r.decodeTokensPerSecond / tok.decodeTokensPerSecond).toFixed(2)}x)` : ''}`,
          `${fmt(r.achievedGflops, 2)} (${fmt(r.matmulCeilingGflops, 1)})`,
          r.expertsPerLayer === 0 ? '-' : `${fmt(r.expertsPerLayerMeasured)} (${fmt(r.expertsPerLayer)})`, top];
      }),
    ]));
    out.push('');
  }
  return out.join('\n');
}

export function formatCosts(cfg: ModelConfig, name: string, variants: readonly Variant[], batchSizes: number[]): string {
  return [`### ${name}: analytic decoder-step costs (float32; weight MB read per step at each batch, experts per MoE layer in parentheses)`, '', table([
    ['variant', 'GFLOP/token (step)', '+ start', 'encoder GFLOP/token', ...batchSizes.map((b) => `B=${b} weight MB/step`), 'cache KB/token'],
    ...variants.map((v) => {
      const c1 = stepCost(cfg, v, 1);
      return [v, (c1.flopsPerToken / 1e9).toFixed(4), (c1.startFlopsPerToken / 1e9).toFixed(4), (c1.encoderFlopsPerToken / 1e9).toFixed(4),
        ...batchSizes.map((b) => {
          const c = stepCost(cfg, v, b);
          return `${fmt(c.weightBytesPerStep / 1e6)}${c.expertsPerLayer > 0 ? ` (${fmt(c.expertsPerLayer)})` : ''}`;
        }), fmt(c1.cacheBytesPerToken / 1e3)];
    }),
  ])].join('\n');
}

export function formatMatmuls(ms: MatmulRow[]): string {
  return [`### ${ms[0]?.config}: plain 2-D matMul ceiling (XNNPACK, weights packed once)`, '', table([
    ['[m,k] x [k,n]', 'ms', 'GFLOP/s', 'weight GB/s'],
    ...ms.map((m) => [`[${m.m},${m.k}] x [${m.k},${m.n}]`, m.ms.toFixed(3), fmt(m.gflops, 2), fmt(m.weightGBps, 2)]),
  ])].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Entry points: a child process serving one group, or the command line.

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const job = process.env.TASKMOE_BENCH_JOB;
  if (job !== undefined && process.send !== undefined) {
    const send = (m: ChildMessage) => process.send!(m);
    try {
      await serveGroup(JSON.parse(job) as GroupJob, send);
    } catch (err) {
      send({ type: 'error', message: (err as Error).stack ?? String(err) });
      process.disconnect();
    }
  } else {
    const args = process.argv.slice(2);
    const value = (flag: string) => {
      const i = args.indexOf(flag);
      return i >= 0 ? args[i + 1] : undefined;
    };
    const list = (flag: string) => value(flag)?.split(',');
    await benchEngine({
      quick: args.includes('--quick'),
      json: value('--json'),
      batchSizes: list('--batch')?.map(Number),
      reps: value('--reps') === undefined ? undefined : Number(value('--reps')),
      configs: list('--configs'),
      variants: list('--variants') as Variant[] | undefined,
    });
  }
}
