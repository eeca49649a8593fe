// The decoder: incremental decoding over a key/value cache, with rows that join, leave and are
// reordered (beam search) between steps.
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, numLayers } from './config.ts';
import { type Weights, attention, causalBias, mergeHeads, splitHeads, windowBias } from './layers.ts';
import { type Routes, concatRoutes, disposeRoutes, selectRoutes } from './moe.ts';
import { takeRows } from './ops.ts';
import { type Direction, type Embeddings, type GateCollector, Stack, maskedMean } from './stack.ts';
import type { EncoderOutput } from './encoder.ts';

/**
 * What a decoder keeps across steps for a batch: cross-attention keys/values, routes and the
 * self-attention cache. Rows need not have started together (merge): a row's own cache columns
 * begin at selfStart[row], and the columns before are masked, so it decodes as it would alone.
 */
export interface DecoderState {
  rows: number;
  /** Per row, its first self-attention cache column; its position is (cache columns - selfStart). */
  selfStart: number[];
  /** Per row, its source length (cross-attention covers the longest). */
  srcLengths: number[];
  srcBias: tf.Tensor4D; // [B, 1, 1, S]
  crossK: tf.Tensor4D[]; // per layer [B, H, S, dh]
  crossV: tf.Tensor4D[]; // per layer [B, H, S, dh]
  routes: (Routes | undefined)[]; // per layer, for per-sentence routings
  selfK: tf.Tensor4D[]; // per layer [B, H, t, dh]
  selfV: tf.Tensor4D[]; // per layer [B, H, t, dh]
}

export class Decoder extends Stack {
  constructor(cfg: ModelConfig, weights: Weights) {
    super(cfg, 'decoder', weights);
  }

  /**
   * Prepares decoding for the encoded batch: cross-attention keys and values are computed once here.
   * `rowsPerSentence` > 1 repeats each sentence that many times (beam search).
   */
  start(enc: EncoderOutput, dirs: Direction[], rowsPerSentence = 1, collect?: GateCollector): DecoderState {
    const { batch, srcLen, lengths } = enc;
    const rows = batch * rowsPerSentence;
    const repeat = (x: tf.Tensor2D) => // [B*S, d] -> [B*r*S, d]
      rowsPerSentence === 1 ? x.clone() : x.reshape([batch, 1, srcLen, -1]).tile([1, rowsPerSentence, 1, 1]).reshape([rows * srcLen, -1]) as tf.Tensor2D;
    const rowLengths = lengths.flatMap((l) => new Array(rowsPerSentence).fill(l));
    const rowDirs = dirs.flatMap((d) => new Array(rowsPerSentence).fill(d));
    const { crossK, crossV, srcBias } = tf.tidy(() => {
      const memory = repeat(enc.out);
      const crossK: tf.Tensor4D[] = [];
      const crossV: tf.Tensor4D[] = [];
      for (let i = 0; i < numLayers(this.cfg, 'decoder'); i++) {
        const [k, v] = tf.split(this.proj(memory, `${this.layer(i)}.crossAttn.wkv`), 2, 1) as tf.Tensor2D[];
        crossK.push(splitHeads(k, rows, this.cfg.numHeads));
        crossV.push(splitHeads(v, rows, this.cfg.numHeads));
      }
      return { crossK, crossV, srcBias: windowBias(rowLengths.map(() => 0), rowLengths, srcLen) };
    });
    // Sentence routing in the decoder gates on the source's mean encoder output, so it never sees future target tokens.
    const sourceMean = () => {
      const mask = tf.tensor2d(rowLengths.flatMap((l) => Array.from({ length: srcLen }, (_, t) => (t < l ? 1 : 0))), [rows * srcLen, 1]);
      return maskedMean(repeat(enc.out), mask, rows, srcLen);
    };
    const layers = Array.from({ length: numLayers(this.cfg, 'decoder') }, (_, i) => i);
    const routes = layers.map((i) => this.sentenceRoute(i, rowDirs, sourceMean, collect));
    const { numHeads: h, dModel } = this.cfg;
    return {
      rows, selfStart: new Array<number>(rows).fill(0), srcLengths: rowLengths, srcBias, crossK, crossV, routes,
      selfK: layers.map(() => tf.zeros([rows, h, 0, dModel / h]) as tf.Tensor4D),
      selfV: layers.map(() => tf.zeros([rows, h, 0, dModel / h]) as tf.Tensor4D),
    };
  }

  /**
   * Runs the decoder over `tokens` ([rows, T], each row from its next position), appending to the
   * self-attention cache, and returns the logits of every position: [rows*T, V].
   * T = 1 is incremental decoding; T > 1 from a fresh state is full recomputation (causal).
   * With `output` 'states', the final-normed states [rows*T, d] instead (the trainer projects them itself).
   */
  forward(emb: Embeddings, state: DecoderState, tokens: number[][], collect?: GateCollector, output: 'logits' | 'states' = 'logits'): tf.Tensor2D {
    const rows = state.rows;
    const t = tokens[0].length;
    const heads = this.cfg.numHeads;
    const columns = state.selfK[0].shape[2];
    const staggered = state.selfStart.some((s) => s > 0);
    const next = tf.tidy(() => {
      const selfBias = t > 1 ? causalBias(t) : staggered ? windowBias(state.selfStart, state.selfStart.map(() => columns + 1), columns + 1) : null;
      let x = emb.embed(tokens, staggered ? state.selfStart.map((s) => columns - s) : columns, 'target');
      const selfK: tf.Tensor4D[] = [];
      const selfV: tf.Tensor4D[] = [];
      for (let i = 0; i < numLayers(this.cfg, 'decoder'); i++) {
        const l = this.layer(i);
        // causal self-attention over the cache plus the new positions
        x = this.residual(x, `${l}.selfAttn.ln`, (h) => {
          const q = splitHeads(this.proj(h, `${l}.selfAttn.wq`), rows, heads);
          const [k, v] = tf.split(this.proj(h, `${l}.selfAttn.wkv`), 2, 1) as tf.Tensor2D[];
          const kAll = tf.concat([state.selfK[i], splitHeads(k, rows, heads)], 2);
          const vAll = tf.concat([state.selfV[i], splitHeads(v, rows, heads)], 2);
          selfK.push(kAll);
          selfV.push(vAll);
          return this.proj(mergeHeads(attention(q, kAll, vAll, selfBias)), `${l}.selfAttn.wo`);
        });
        // cross-attention over the encoder output
        x = this.residual(x, `${l}.crossAttn.ln`, (h) => {
          const qc = splitHeads(this.proj(h, `${l}.crossAttn.wq`), rows, heads);
          return this.proj(mergeHeads(attention(qc, state.crossK[i], state.crossV[i], state.srcBias)), `${l}.crossAttn.wo`);
        });
        x = this.residual(x, `${l}.ffn.ln`, (h) => this.ffnBlock(i, h, state.routes[i], t, undefined, collect));
      }
      const states = this.finalNorm(x);
      const logits = output === 'logits' ? emb.logits(states) : states;
      return { logits, selfK, selfV };
    });
    for (const c of [...state.selfK, ...state.selfV]) c.dispose();
    state.selfK = next.selfK;
    state.selfV = next.selfV;
    return next.logits;
  }

  /**
   * Joins two batches' states into one, the rows of `a` then those of `b` (continuous batching:
   * sentences join a running batch). Both are consumed. The shorter cache gets zero columns in
   * front and the shorter sources padding behind, all masked, so every row's outputs stay exact.
   */
  merge(a: DecoderState, b: DecoderState): DecoderState {
    const columns = Math.max(a.selfK[0].shape[2], b.selfK[0].shape[2]);
    const srcLen = Math.max(a.srcBias.shape[3], b.srcBias.shape[3]);
    const front = (s: DecoderState) => columns - s.selfK[0].shape[2];
    const behind = (s: DecoderState) => srcLen - s.srcBias.shape[3];
    const joined = tf.tidy(() => {
      // [B, H, t, dh] caches get zero columns in front, [B, H, S, dh] cross keys/values zero positions behind
      const cache = (s: DecoderState, c: tf.Tensor4D) => c.pad([[0, 0], [0, 0], [front(s), 0], [0, 0]]);
      const cross = (s: DecoderState, c: tf.Tensor4D) => c.pad([[0, 0], [0, 0], [0, behind(s)], [0, 0]]);
      const rows = (x: tf.Tensor, y: tf.Tensor) => tf.concat([x, y]) as tf.Tensor4D;
      return {
        srcBias: rows(a.srcBias.pad([[0, 0], [0, 0], [0, 0], [0, behind(a)]], -1e9), b.srcBias.pad([[0, 0], [0, 0], [0, 0], [0, behind(b)]], -1e9)),
        crossK: a.crossK.map((k, i) => rows(cross(a, k), cross(b, b.crossK[i]))),
        crossV: a.crossV.map((v, i) => rows(cross(a, v), cross(b, b.crossV[i]))),
        selfK: a.selfK.map((k, i) => rows(cache(a, k), cache(b, b.selfK[i]))),
        selfV: a.selfV.map((v, i) => rows(cache(a, v), cache(b, b.selfV[i]))),
      };
    });
    const merged: DecoderState = {
      ...joined,
      rows: a.rows + b.rows,
      selfStart: [...a.selfStart.map((s) => s + front(a)), ...b.selfStart.map((s) => s + front(b))],
      srcLengths: [...a.srcLengths, ...b.srcLengths],
      routes: a.routes.map((r, i) => (r === undefined ? undefined : concatRoutes(r, b.routes[i]!))),
    };
    this.disposeState(a);
    this.disposeState(b);
    return merged;
  }

  /** Keeps the given rows of the self-attention cache, in that order (beam search reordering within sentences). */
  reorder(state: DecoderState, rows: number[]): void {
    const pick = (ts: tf.Tensor4D[]) => ts.map((c) => { const r = takeRows(c, rows); c.dispose(); return r; });
    state.selfK = pick(state.selfK);
    state.selfV = pick(state.selfV);
  }

  /**
   * Keeps only the given rows of the state, in that order: finished sentences leave the batch.
   * Cache columns and source positions that no kept row uses are dropped with them.
   */
  keepRows(state: DecoderState, rows: number[]): void {
    const selfStart = rows.map((r) => state.selfStart[r]);
    const srcLengths = rows.map((r) => state.srcLengths[r]);
    const firstColumn = Math.min(...selfStart);
    const srcLen = Math.max(...srcLengths);
    // t: [B, ...] -> the kept rows, and along `axis` only [from, from + length)
    const pick = <T extends tf.Tensor>(t: T, axis: number, from: number, length: number): T => {
      const kept = tf.tidy(() => {
        const taken = takeRows(t, rows);
        if (length === t.shape[axis]) return taken;
        return taken.slice(t.shape.map((_, i) => (i === axis ? from : 0)), t.shape.map((_, i) => (i === axis ? length : -1))) as T;
      });
      t.dispose();
      return kept;
    };
    const columns = state.selfK[0].shape[2] - firstColumn;
    state.srcBias = pick(state.srcBias, 3, 0, srcLen);
    state.crossK = state.crossK.map((c) => pick(c, 2, 0, srcLen));
    state.crossV = state.crossV.map((c) => pick(c, 2, 0, srcLen));
    state.selfK = state.selfK.map((c) => pick(c, 2, firstColumn, columns));
    state.selfV = state.selfV.map((c) => pick(c, 2, firstColumn, columns));
    state.selfStart = selfStart.map((s) => s - firstColumn);
    state.srcLengths = srcLengths;
    state.routes = state.routes.map((r) => {
      if (r === undefined) return undefined;
      const kept = selectRoutes(r, rows);
      disposeRoutes(r);
      return kept;
    });
    state.rows = rows.length;
  }

  disposeState(state: DecoderState): void {
    for (const c of [state.srcBias, ...state.crossK, ...state.crossV, ...state.selfK, ...state.selfV]) c.dispose();
    state.routes.forEach(disposeRoutes);
  }
}
