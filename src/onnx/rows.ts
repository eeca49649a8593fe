// Row bookkeeping of the ONNX decoder state on the host: the caches are [B, H, L, dh] float
// tensors whose rows join, leave and reorder between steps. Each operation is one pass of block
// copies into a fresh array, as the tfjs engine does on wasm (src/models/ops.ts, takeRows).
import type { BeamCandidates } from '../models/engine.ts';
import { windowBiasData } from '../models/layers.ts';
import { Tensor } from './session.ts';

/** Where a row of the output comes from: source row `row` of `src`, its columns shifted by `from`. */
export interface RowSource {
  src: Tensor;
  rows: readonly number[];
  /** Output column j reads source column j + from; outside the source it is zero. */
  from: number;
}

/**
 * Builds a [sum of rows, H, length, dh] tensor from parts taken in order: part p contributes its
 * rows, each with its columns shifted by `from` (negative: zero columns in front, i.e. padding a
 * cache; beyond the source's end: zeros behind, i.e. padding a source).
 */
export function gatherRows(parts: readonly RowSource[], length: number): Tensor {
  const [, h, , dh] = parts[0].src.dims;
  const rows = parts.reduce((n, p) => n + p.rows.length, 0);
  const out = new Float32Array(rows * h * length * dh);
  let outRow = 0;
  for (const { src, rows: picked, from } of parts) {
    const [b, , srcLen] = src.dims;
    const data = src.data as Float32Array;
    const first = Math.max(0, -from); // first output column with a source column
    const last = Math.min(length, srcLen - from); // one past the last
    for (const row of picked) {
      if (!(row >= 0 && row < b)) throw new RangeError(`row ${row} is outside [0, ${b})`);
      for (let head = 0; head < h; head++) {
        const srcBase = ((row * h + head) * srcLen + from) * dh;
        const outBase = (outRow * h + head) * length * dh;
        if (last > first) out.set(data.subarray(srcBase + first * dh, srcBase + last * dh), outBase + first * dh);
      }
      outRow++;
    }
  }
  return new Tensor('float32', out, [rows, h, length, dh]);
}

/** An empty cache, [rows, H, 0, dh]. */
export function emptyCache(rows: number, heads: number, headDim: number): Tensor {
  return new Tensor('float32', new Float32Array(0), [rows, heads, 0, headDim]);
}

/** Per-sentence routes of one layer on the host: experts [rows, k] and their gates [rows, k]. */
export interface HostRoutes {
  experts: BigInt64Array;
  gates: Float32Array;
}

/** The given rows of routes with k choices each, in that order. */
export function pickRoutes(r: HostRoutes, rows: readonly number[], k: number): HostRoutes {
  const experts = new BigInt64Array(rows.length * k);
  const gates = new Float32Array(rows.length * k);
  rows.forEach((row, i) => {
    experts.set(r.experts.subarray(row * k, (row + 1) * k), i * k);
    gates.set(r.gates.subarray(row * k, (row + 1) * k), i * k);
  });
  return { experts, gates };
}

/** a's routes then b's. */
export function concatRoutes(a: HostRoutes, b: HostRoutes): HostRoutes {
  const experts = new BigInt64Array(a.experts.length + b.experts.length);
  experts.set(a.experts);
  experts.set(b.experts, a.experts.length);
  const gates = new Float32Array(a.gates.length + b.gates.length);
  gates.set(a.gates);
  gates.set(b.gates, a.gates.length);
  return { experts, gates };
}

/** layers.ts's windowBias as an ONNX tensor, [B, 1, 1, len]. */
export function windowBias(starts: readonly number[], ends: readonly number[], len: number): Tensor {
  return new Tensor('float32', windowBiasData(starts, ends, len), [starts.length, 1, 1, len]);
}

export function int64(values: readonly number[], dims: number[] = [values.length]): Tensor {
  return new Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
}

/**
 * Each sentence's best 2*beam continuations from its rows' best 2*beam (values, tokens: [rows,
 * 2*beam]): each gets its row's running log-probability added (in float32, as tfjs adds), and ties
 * go to the lower index into [beam, V], as tf.topk orders them.
 */
export function beamCandidates(
  values: Float32Array,
  tokens: BigInt64Array,
  liveLogProb: number[],
  beam: number,
  vocab: number,
): BeamCandidates {
  const want = 2 * beam;
  const sentences = liveLogProb.length / beam;
  const scores = new Float32Array(sentences * want);
  const indices = new Int32Array(sentences * want);
  for (let b = 0; b < sentences; b++) {
    const cands: { score: number; index: number }[] = [];
    for (let j = 0; j < beam; j++) {
      const row = b * beam + j;
      for (let r = 0; r < want; r++) {
        cands.push({
          score: Math.fround(values[row * want + r] + liveLogProb[row]),
          index: j * vocab + Number(tokens[row * want + r]),
        });
      }
    }
    cands.sort((x, y) => y.score - x.score || x.index - y.index || 0);
    cands.slice(0, want).forEach((c, r) => {
      scores[b * want + r] = c.score;
      indices[b * want + r] = c.index;
    });
  }
  return { scores, indices };
}
