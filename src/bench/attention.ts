// Micro-benchmark: attention for incremental decoding (one query position per sentence) on the
// current backend, comparing cache layouts and formulations.
//
//   node --import tsx src/bench/attention.ts [--quick] [--json FILE]
//
// Variants (all compute softmax(q k^T / sqrt(dh) + bias) v for q: [B, H, 1, dh]):
//   matmul-kT       the engine's layers.ts `attention`: keys cached transposed [B,H,dh,S], values
//                   [B,H,S,dh], two batched 3-D matMuls without transpose flags.
//   matmul-tB       keys [B,H,S,dh] and values transposed [B,H,dh,S], both matMuls with transposeB,
//                   so the innermost loop of the wasm batched matMul reads contiguous memory.
//   matmul-k-tB     keys [B,H,S,dh] with transposeB, values [B,H,S,dh] untransposed.
//   elementwise     keys and values [B,H,S,dh]: scores = sum(q * k, -1); out = sum(p[..., None] * v, 2).
//   elementwise-vT  keys [B,H,S,dh], values [B,H,dh,S]: out = sum(p[:, :, None, :] * vT, -1)
//                   (both reductions over the innermost axis, no hidden transpose in Sum).
// Two timings per variant: `core` (the attention alone, caches given) and `step` (what one decoder
// self-attention does per step: split heads of the new q/k/v rows [B, d], append k and v to the
// cache in the variant's layout, attend, merge heads back to [B, d]).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { attention, mergeHeads, splitHeads } from '../models/layers.ts';
import { ensureBackend } from './engine.ts';
import { median } from './stats.ts';

export type AttentionVariant = 'matmul-kT' | 'matmul-tB' | 'matmul-k-tB' | 'elementwise' | 'elementwise-vT';
export const ATTENTION_VARIANTS: readonly AttentionVariant[] = ['matmul-kT', 'matmul-tB', 'matmul-k-tB', 'elementwise', 'elementwise-vT'];

export interface AttentionRow {
  variant: AttentionVariant;
  batchSize: number;
  keys: number;
  heads: number;
  headDim: number;
  /** Median ms of the attention alone. */
  coreMs: number;
  /** Median ms of a whole incremental self-attention step (split, cache append, attend, merge). */
  stepMs: number;
  /** Max |difference| of the output against matmul-kT. */
  maxAbsDiff: number;
}

/** Keys/values in the layout a variant caches them in. */
interface Cache {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

const keysT = (v: AttentionVariant) => v === 'matmul-kT';
const valuesT = (v: AttentionVariant) => v === 'matmul-tB' || v === 'elementwise-vT';

/** k, v: [B, H, S, dh] -> the variant's layout. */
function toLayout(variant: AttentionVariant, k: tf.Tensor4D, v: tf.Tensor4D): Cache {
  return {
    k: keysT(variant) ? k.transpose([0, 1, 3, 2]) : k.clone(),
    v: valuesT(variant) ? v.transpose([0, 1, 3, 2]) : v.clone(),
  };
}

/** q: [B, H, 1, dh], bias broadcastable to [B, H, 1, S] -> [B, H, 1, dh] */
export function attend(variant: AttentionVariant, q: tf.Tensor4D, c: Cache, bias: tf.Tensor | null): tf.Tensor4D {
  const [b, h, t, dh] = q.shape;
  const scale = 1 / Math.sqrt(dh);
  switch (variant) {
    case 'matmul-kT':
      return attention(q, c.k, c.v, bias);
    case 'matmul-tB':
    case 'matmul-k-tB': {
      const s = c.k.shape[2];
      let scores: tf.Tensor = tf.matMul(q.reshape([b * h, t, dh]), c.k.reshape([b * h, s, dh]), false, true).reshape([b, h, t, s]);
      scores = scores.mul(scale);
      if (bias !== null) scores = scores.add(bias);
      const probs = tf.softmax(scores).reshape([b * h, t, s]);
      const out = variant === 'matmul-tB'
        ? tf.matMul(probs, c.v.reshape([b * h, dh, s]), false, true)
        : tf.matMul(probs, c.v.reshape([b * h, s, dh]));
      return out.reshape([b, h, t, dh]);
    }
    case 'elementwise':
    case 'elementwise-vT': {
      if (t !== 1) throw new Error('the elementwise formulation is for one query position');
      const s = c.k.shape[2];
      let scores: tf.Tensor = q.mul(c.k).sum(-1).reshape([b, h, 1, s]); // [B,H,1,dh]*[B,H,S,dh] -> [B,H,S]
      scores = scores.mul(scale);
      if (bias !== null) scores = scores.add(bias);
      const probs = tf.softmax(scores); // [B,H,1,S]
      if (variant === 'elementwise') return probs.reshape([b, h, s, 1]).mul(c.v).sum(2).reshape([b, h, 1, dh]);
      return probs.mul(c.v).sum(-1).reshape([b, h, 1, dh]); // [B,H,1,S]*[B,H,dh,S] -> [B,H,dh]
    }
  }
}

/** Appends new rows [B, d] to a cache in the variant's layout. */
function append(variant: AttentionVariant, c: Cache, k2: tf.Tensor2D, v2: tf.Tensor2D, heads: number): Cache {
  const rows = k2.shape[0];
  const kNew = splitHeads(k2, rows, heads); // [B,H,1,dh]
  const vNew = splitHeads(v2, rows, heads);
  return {
    k: (keysT(variant) ? tf.concat([c.k, kNew.reshape([rows, heads, -1, 1])], 3) : tf.concat([c.k, kNew], 2)) as tf.Tensor4D,
    v: (valuesT(variant) ? tf.concat([c.v, vNew.reshape([rows, heads, -1, 1])], 3) : tf.concat([c.v, vNew], 2)) as tf.Tensor4D,
  };
}

/**
 * Times every function `reps` times, round-robin (one call of each per round, so load changes on a
 * shared machine hit all alike), after two warm-up rounds. Returns median ms and the first output.
 */
function timeInterleaved(fns: (() => tf.Tensor)[], reps: number): { ms: number; out: Float32Array }[] {
  const times: number[][] = fns.map(() => []);
  const outs: Float32Array[] = fns.map(() => new Float32Array());
  for (let round = -2; round < reps; round++) {
    fns.forEach((fn, i) => {
      const t0 = performance.now();
      const r = fn();
      const data = r.dataSync() as Float32Array;
      const dt = performance.now() - t0;
      if (round >= 0) times[i].push(dt);
      if (round === 0) outs[i] = Float32Array.from(data);
      r.dispose();
    });
  }
  return fns.map((_, i) => ({ ms: median(times[i]), out: outs[i] }));
}

/** The same layouts on a whole sequence (T = S queries, as the encoder runs attention), attention alone. */
export interface SequenceRow {
  variant: AttentionVariant;
  batchSize: number;
  length: number;
  ms: number;
  maxAbsDiff: number;
}

export interface BenchAttentionOptions {
  quick?: boolean;
  json?: string;
  log?: (s: string) => void;
  batchSizes?: number[];
  keys?: number[];
  heads?: number;
  headDim?: number;
}

export async function benchAttention(opts: BenchAttentionOptions = {}): Promise<AttentionRow[]> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const backend = await ensureBackend(log);
  const heads = opts.heads ?? 8;
  const dh = opts.headDim ?? 64;
  const d = heads * dh;
  const batchSizes = opts.batchSizes ?? (opts.quick ? [1, 8] : [1, 8, 32, 64]);
  const keyCounts = opts.keys ?? (opts.quick ? [32] : [32, 64]);
  const reps = opts.quick ? 9 : 41;
  log(`attention micro-benchmark, backend ${backend.description}: T=1 query, H=${heads}, dh=${dh}, median of ${reps} rounds, variants interleaved (after 2 warm-up rounds)`);
  const rows: AttentionRow[] = [];
  const baseline = tf.memory().numTensors;
  for (const b of batchSizes) {
    for (const s of keyCounts) {
      const q2 = tf.randomNormal([b, d], 0, 1, 'float32', 1) as tf.Tensor2D;
      const kAll = tf.randomNormal([b, heads, s, dh], 0, 1, 'float32', 2) as tf.Tensor4D;
      const vAll = tf.randomNormal([b, heads, s, dh], 0, 1, 'float32', 3) as tf.Tensor4D;
      // The cache holds S-1 positions; the step appends the S-th (k2, v2 = kAll/vAll's last position).
      const [kPrev, vPrev, k2, v2, q] = tf.tidy(() => [
        kAll.slice([0, 0, 0, 0], [b, heads, s - 1, dh]),
        vAll.slice([0, 0, 0, 0], [b, heads, s - 1, dh]),
        kAll.slice([0, 0, s - 1, 0], [b, heads, 1, dh]).reshape([b, d]) as tf.Tensor2D,
        vAll.slice([0, 0, s - 1, 0], [b, heads, 1, dh]).reshape([b, d]) as tf.Tensor2D,
        splitHeads(q2, b, heads),
      ] as [tf.Tensor4D, tf.Tensor4D, tf.Tensor2D, tf.Tensor2D, tf.Tensor4D]);
      // A padding-style bias [B, 1, 1, S] as cross-attention uses; self-attention passes null at T=1.
      const bias = tf.zeros([b, 1, 1, s]);
      const full = ATTENTION_VARIANTS.map((v) => toLayout(v, kAll, vAll));
      const prev = ATTENTION_VARIANTS.map((v) => toLayout(v, kPrev, vPrev));
      const core = timeInterleaved(ATTENTION_VARIANTS.map((v, i) => () => tf.tidy(() => attend(v, q, full[i], bias))), reps);
      const step = timeInterleaved(ATTENTION_VARIANTS.map((v, i) => () => tf.tidy(() => {
        const c = append(v, prev[i], k2, v2, heads);
        return mergeHeads(attend(v, splitHeads(q2, b, heads), c, null));
      })), reps);
      const reference = core[0].out;
      const line: string[] = [];
      ATTENTION_VARIANTS.forEach((variant, i) => {
        let diff = 0;
        for (let j = 0; j < reference.length; j++) diff = Math.max(diff, Math.abs(core[i].out[j] - reference[j]));
        rows.push({ variant, batchSize: b, keys: s, heads, headDim: dh, coreMs: core[i].ms, stepMs: step[i].ms, maxAbsDiff: diff });
        line.push(`${variant} ${core[i].ms.toFixed(3)}/${step[i].ms.toFixed(3)}`);
      });
      tf.dispose([...full, ...prev].flatMap((c) => [c.k, c.v]));
      tf.dispose([q2, kAll, vAll, kPrev, vPrev, k2, v2, q, bias]);
      log(`  B=${b} S=${s}: ${line.join(', ')}`);
    }
  }
  // Whole sequences (the encoder's self-attention), for the matMul layouts only.
  const seqVariants = ATTENTION_VARIANTS.filter((v) => v.startsWith('matmul'));
  const seqRows: SequenceRow[] = [];
  const seqLen = 32;
  for (const b of batchSizes) {
    const [q, k, v, bias] = tf.tidy(() => [
      tf.randomNormal([b, heads, seqLen, dh], 0, 1, 'float32', 4),
      tf.randomNormal([b, heads, seqLen, dh], 0, 1, 'float32', 5),
      tf.randomNormal([b, heads, seqLen, dh], 0, 1, 'float32', 6),
      tf.zeros([b, 1, 1, seqLen]),
    ]) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const caches = seqVariants.map((variant) => toLayout(variant, k, v));
    const res = timeInterleaved(seqVariants.map((variant, i) => () => tf.tidy(() => attend(variant, q, caches[i], bias))), opts.quick ? 5 : 15);
    seqVariants.forEach((variant, i) => {
      let diff = 0;
      for (let j = 0; j < res[0].out.length; j++) diff = Math.max(diff, Math.abs(res[i].out[j] - res[0].out[j]));
      seqRows.push({ variant, batchSize: b, length: seqLen, ms: res[i].ms, maxAbsDiff: diff });
    });
    tf.dispose([q, k, v, bias, ...caches.flatMap((c) => [c.k, c.v])]);
  }
  log('');
  log(formatSequence(seqRows));
  const leaked = tf.memory().numTensors - baseline;
  if (leaked !== 0) log(`WARNING: ${leaked} tensors leaked`);
  log('');
  log(formatAttention(rows));
  if (opts.json !== undefined) {
    fs.mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
    fs.writeFileSync(opts.json, JSON.stringify({ backend: backend.description, incremental: rows, sequence: seqRows }, null, 2) + '\n');
  }
  return rows;
}

export function formatAttention(rows: AttentionRow[]): string {
  const out: string[] = [];
  out.push('| B | S | ' + ATTENTION_VARIANTS.map((v) => `${v} core / step (ms)`).join(' | ') + ' | fastest step vs matmul-kT |');
  out.push('|---|---|' + ATTENTION_VARIANTS.map(() => '---').join('|') + '|---|');
  const keys = [...new Set(rows.map((r) => `${r.batchSize}/${r.keys}`))];
  for (const key of keys) {
    const rs = rows.filter((r) => `${r.batchSize}/${r.keys}` === key);
    const cur = rs.find((r) => r.variant === 'matmul-kT')!;
    const best = rs.reduce((a, r) => (r.stepMs < a.stepMs ? r : a));
    out.push(`| ${cur.batchSize} | ${cur.keys} | ` + ATTENTION_VARIANTS.map((v) => {
      const r = rs.find((x) => x.variant === v)!;
      return `${r.coreMs.toFixed(3)} / ${r.stepMs.toFixed(3)}`;
    }).join(' | ') + ` | ${best.variant} ${(cur.stepMs / best.stepMs).toFixed(2)}x |`);
  }
  const maxDiff = Math.max(...rows.map((r) => r.maxAbsDiff));
  out.push('');
  out.push(`max |output - matmul-kT output| over all variants: ${maxDiff.toExponential(2)}`);
  return out.join('\n');
}

export function formatSequence(rows: SequenceRow[]): string {
  const variants = [...new Set(rows.map((r) => r.variant))];
  const out = [`Whole sequence (T = S = ${rows[0]?.length}, the encoder's case), attention alone, median ms:`, ''];
  out.push('| B | ' + variants.join(' | ') + ' |');
  out.push('|---|' + variants.map(() => '---').join('|') + '|');
  for (const b of [...new Set(rows.map((r) => r.batchSize))]) {
    out.push(`| ${b} | ` + variants.map((v) => rows.find((r) => r.batchSize === b && r.variant === v)!.ms.toFixed(3)).join(' | ') + ' |');
  }
  out.push('');
  out.push(`max |output - matmul-kT output|: ${Math.max(...rows.map((r) => r.maxAbsDiff)).toExponential(2)}`);
  return out.join('\n');
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const jsonAt = args.indexOf('--json');
  await benchAttention({ quick: args.includes('--quick'), json: jsonAt >= 0 ? args[jsonAt + 1] : undefined });
}
