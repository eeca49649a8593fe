// Pre-LN Transformer encoder-decoder with shared, tied embeddings and MoE FFNs. The encoder, the
// decoder and the embeddings are separate objects so that a server can cache and share them apart
// (one encoder for every pair, one extracted decoder per target language).
import * as tf from '@tensorflow/tfjs';
import { type Architecture, type Component, type ModelConfig, archOf, biasName, hasExperts, isMoeLayer, numLayers, taskKey, taskList } from './config.ts';
import { type Embeddings, tensorBytes } from './embeddings.ts';
import { type FfnWeights, type Weights, attention, causalBias, layerNorm, linear, mergeHeads, ffn, splitHeads, weight, windowBias } from './layers.ts';
import { type ExpertWeights, type GateCollector, type Routes, concatRoutes, firstChoices, disposeRoutes, dropRows, moeFFN, repeatRoutes, selectRoutes, topKGating } from './moe.ts';
import { gatherRows, takeRows } from './ops.ts';

export { Embeddings, tensorBytes } from './embeddings.ts';
export type { GateCollector, GateRecord } from './moe.ts';

function disposeAll(w: Weights): void {
  for (const t of w.values()) t.dispose();
  w.clear();
}

/** A translation direction as the model sees it. */
export interface Direction {
  source: string;
  target: string;
}

/**
 * One encoder or decoder stack and the routing of its MoE layers. It owns its weights
 * (not the embeddings) and frees them on dispose().
 */
abstract class Stack {
  readonly experts: (ExpertWeights[] | undefined)[];
  readonly arch: Architecture;
  private readonly tasks: Map<string, number>;

  constructor(readonly cfg: ModelConfig, readonly component: Component, readonly weights: Weights) {
    this.arch = archOf(cfg);
    this.tasks = new Map(taskList(cfg, component).map((t, i) => [t, i]));
    this.experts = Array.from({ length: numLayers(cfg, component) }, (_, i) =>
      isMoeLayer(cfg, component, i) && hasExperts(cfg, component)
        ? Array.from({ length: cfg.moe.numExperts }, (_, e) => this.ffnWeights(`${this.layer(i)}.ffn.experts.${e}`))
        : undefined,
    );
  }

  /** The FFN under `prefix` (`….ffn` or `….ffn.experts.e`), its biases when the model has them. */
  protected ffnWeights(prefix: string): FfnWeights {
    return {
      wi: this.w(`${prefix}.wi`), wo: this.w(`${prefix}.wo`),
      bi: this.weights.get(`${prefix}.bi`) as tf.Tensor1D | undefined, bo: this.weights.get(`${prefix}.bo`) as tf.Tensor1D | undefined,
    };
  }

  // h: [N, in] -> h w + b: [N, out], `name` the weight ("….wq"); the bias is used when the model has one
  protected proj(h: tf.Tensor2D, name: string): tf.Tensor2D {
    return linear(h, this.w(name), this.weights.get(biasName(name)) as tf.Tensor1D | undefined);
  }

  // x: [N, d] -> LN(x) with the named norm ("….selfAttn.ln")
  protected norm(x: tf.Tensor2D, ln: string): tf.Tensor2D {
    return layerNorm(x, this.w(`${ln}.g`), this.w(`${ln}.b`), this.arch.layerNormEps);
  }

  /** A residual block around f: x + f(LN(x)) for pre-LN, LN(x + f(x)) for post-LN (Marian). x: [N, d] -> [N, d] */
  protected residual(x: tf.Tensor2D, ln: string, f: (h: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    if (this.arch.norm === 'post') return this.norm(x.add(f(x)), ln);
    return x.add(f(this.norm(x, ln)));
  }

  /** The stack's output: its final LN for pre-LN models; post-LN layers end normalised already. */
  protected finalNorm(x: tf.Tensor2D): tf.Tensor2D {
    return this.arch.norm === 'pre' ? this.norm(x, `${this.component}.lnF`) : x;
  }

  get routing() {
    return this.cfg.routing[this.component];
  }

  protected layer(i: number): string {
    return `${this.component}.layers.${i}`;
  }

  protected w<R extends tf.Rank>(name: string): tf.Tensor<R> {
    return weight<R>(this.weights, name);
  }

  /** Whether this stack can serve a direction (an extracted stack serves only its task). */
  serves(dir: Direction): boolean {
    const task = taskKey(this.routing, dir.source, dir.target);
    const extractedFor = this.cfg.extracted?.[this.component];
    if (extractedFor !== undefined) return task === extractedFor;
    return task === undefined || this.tasks.has(task);
  }

  /**
   * Per-sentence routes of MoE layer i for routings whose gate input is fixed per sentence: the
   * task embedding (target, pair) or a sentence summary (sentence). Undefined for a dense layer
   * and for token routing, which is decided row by row.
   * summary: [B, d], the sentence representation (used only by sentence routing).
   */
  protected sentenceRoute(i: number, dirs: Direction[], summary: () => tf.Tensor2D, collect?: GateCollector): Routes | undefined {
    if (this.experts[i] === undefined || this.routing === 'token') return undefined;
    const logits = tf.tidy(() => {
      let gateInput: tf.Tensor2D;
      if (this.routing === 'sentence') {
        gateInput = summary();
      } else {
        const rows = dirs.map((d) => {
          const t = this.tasks.get(taskKey(this.routing, d.source, d.target)!);
          if (t === undefined) throw new Error(`${this.component} has no task for ${d.source}-${d.target}`);
          return t;
        });
        gateInput = gatherRows(this.w<tf.Rank.R2>(`${this.component}.taskEmbed`), tf.tensor1d(rows, 'int32'));
      }
      return linear(gateInput, this.w(`${this.layer(i)}.ffn.gate`));
    });
    const { routes, probs } = topKGating(logits, this.cfg.moe.topK);
    collect?.({ component: this.component, layer: i, probs, top1: firstChoices(routes) });
    logits.dispose();
    probs.dispose();
    return routes;
  }

  /**
   * The FFN block of layer i on rows h: dense, or MoE with per-sentence routes (repeated over
   * rowsPerSentence rows) or per-row token routes. h: [N, d] -> [N, d]
   */
  protected ffnBlock(i: number, h: tf.Tensor2D, sentence: Routes | undefined, rowsPerSentence: number, rowValid?: boolean[], collect?: GateCollector): tf.Tensor2D {
    const experts = this.experts[i];
    const l = this.layer(i);
    if (experts === undefined) return ffn(h, this.ffnWeights(`${l}.ffn`), this.arch.activation);
    let routes: Routes;
    let probs: tf.Tensor2D | undefined;
    if (sentence !== undefined) {
      routes = repeatRoutes(sentence, rowsPerSentence);
    } else {
      const logits = linear(h, this.w(`${l}.ffn.gate`));
      ({ routes, probs } = topKGating(logits, this.cfg.moe.topK));
    }
    if (rowValid !== undefined) routes = dropRows(routes, rowValid);
    if (probs !== undefined) collect?.({ component: this.component, layer: i, probs, top1: firstChoices(routes) });
    return moeFFN(h, routes, experts, this.arch.activation);
  }

  get bytes(): number {
    return tensorBytes(this.weights.values());
  }

  dispose(): void {
    disposeAll(this.weights);
  }
}

export interface EncoderOutput {
  out: tf.Tensor2D; // [B*S, d]
  batch: number;
  srcLen: number;
  lengths: number[];
}

export class Encoder extends Stack {
  constructor(cfg: ModelConfig, weights: Weights) {
    super(cfg, 'encoder', weights);
  }

  // ids: [B, S] padded source, lengths: [B] -> [B*S, d]. `collect` sees every gate decision (training).
  encode(emb: Embeddings, ids: number[][], dirs: Direction[], collect?: GateCollector): EncoderOutput {
    const batch = ids.length;
    const lengths = ids.map((s) => s.length);
    const srcLen = Math.max(...lengths);
    const rowValid = ids.flatMap((s) => Array.from({ length: srcLen }, (_, t) => t < s.length));
    const out = tf.tidy(() => {
      const padded = ids.map((s) => [...s, ...new Array<number>(srcLen - s.length).fill(0)]);
      const bias = windowBias(lengths.map(() => 0), lengths, srcLen);
      const validMask = tf.tensor2d(rowValid.map(Number), [batch * srcLen, 1]);
      let x = emb.embed(padded, 0, 'source');
      const heads = this.cfg.numHeads;
      for (let i = 0; i < numLayers(this.cfg, 'encoder'); i++) {
        const l = this.layer(i);
        x = this.residual(x, `${l}.selfAttn.ln`, (h) => {
          const q = splitHeads(this.proj(h, `${l}.selfAttn.wq`), batch, heads);
          const [k, v] = tf.split(this.proj(h, `${l}.selfAttn.wkv`), 2, 1) as tf.Tensor2D[];
          const a = attention(q, splitHeads(k, batch, heads), splitHeads(v, batch, heads), bias);
          return this.proj(mergeHeads(a), `${l}.selfAttn.wo`);
        });
        x = this.residual(x, `${l}.ffn.ln`, (h) => {
          const routes = this.sentenceRoute(i, dirs, () => maskedMean(h, validMask, batch, srcLen), collect);
          const y = this.ffnBlock(i, h, routes, srcLen, rowValid, collect);
          disposeRoutes(routes);
          return y;
        });
      }
      return this.finalNorm(x);
    });
    return { out, batch, srcLen, lengths };
  }
}

// h: [B*S, d], mask: [B*S, 1] -> per-sentence mean over valid rows [B, d]
function maskedMean(h: tf.Tensor2D, mask: tf.Tensor2D, batch: number, srcLen: number): tf.Tensor2D {
  const d = h.shape[1];
  const sum = h.mul(mask).reshape([batch, srcLen, d]).sum(1);
  return sum.div(mask.reshape([batch, srcLen]).sum(1, true)) as tf.Tensor2D;
}

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
   */
  forward(emb: Embeddings, state: DecoderState, tokens: number[][], collect?: GateCollector): tf.Tensor2D {
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
      const logits = emb.logits(this.finalNorm(x));
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
