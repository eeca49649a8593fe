// What greedy and beam search need of a model, whichever library runs it: encode sources into a
// decoder state, take a decoder step (scored for greedy or beam search), and rearrange the state's
// rows (continuous batching, beam reordering). TfjsEngine runs a Seq2Seq on TensorFlow.js;
// src/onnx/engine.ts runs the same weights on ONNX Runtime.
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, targetVocabSize } from './config.ts';
import { Seq2Seq } from './model.ts';
import { takeRows } from './ops.ts';
import { suppressed } from './prompt.ts';
import type { DecoderState, Direction, EncoderOutput } from './transformer.ts';

/** Per row: the most likely next token and its log-probability. */
export interface GreedyScores {
  best: ArrayLike<number>;
  bestLogProb: ArrayLike<number>;
}

/** Per sentence, its `2 * beam` best continuations, best first: total log-probability and index into [beam, V]. */
export interface BeamCandidates {
  scores: ArrayLike<number>;
  indices: ArrayLike<number>;
}

export interface DecoderEngine<State = unknown> {
  readonly config: ModelConfig;
  /** Encodes the sources and starts decoding them, `rowsPerSentence` rows each (beam search). */
  start(sources: number[][], dirs: Direction[], rowsPerSentence?: number): State;
  /** One decoder step, `tokens` one per row: the logits [rows * V] (parity tests, benchmarks). */
  logits(state: State, tokens: number[]): Float32Array;
  /** One decoder step scored for greedy search. */
  greedy(state: State, tokens: number[]): GreedyScores;
  /** One decoder step scored for beam search over rows b*beam..b*beam+beam-1 of each sentence b. */
  beam(state: State, tokens: number[], liveLogProb: number[], beam: number): BeamCandidates;
  /** Joins two states, a's rows then b's; both are consumed. */
  merge(a: State, b: State): State;
  /** Keeps the self-attention cache of the given rows, in that order (beam reordering). */
  reorder(state: State, rows: number[]): void;
  /** Keeps only the given rows, in that order (finished sentences leave). */
  keepRows(state: State, rows: number[]): void;
  disposeState(state: State): void;
  /** Whether two engines compute with the same weights, so their sentences can share a batch. */
  sharesWeightsWith(other: DecoderEngine): boolean;
}

// Encoder cost of a group of n sources padded to length S, in units of one source position's
// linear work: a fixed overhead per group plus n·S·(1 + S/150), attention adding the part
// quadratic in S. Fitted on wasm to the demo model's encoder (n=1..32, S=4..82, within 10%).
const GROUP_OVERHEAD_POSITIONS = 32;
const ATTENTION_LENGTH_SCALE = 150;

function groupCost(n: number, longest: number): number {
  return GROUP_OVERHEAD_POSITIONS + n * longest * (1 + longest / ATTENTION_LENGTH_SCALE);
}

/**
 * Splits ascending source lengths into contiguous groups, [start, end) ranges, that minimise the
 * summed groupCost: one group when the lengths are close, several when padding every source to
 * the longest would cost more than the extra encoder calls.
 */
export function lengthGroups(sortedLengths: readonly number[]): [number, number][] {
  const n = sortedLengths.length;
  const best = new Array<number>(n + 1).fill(Infinity);
  const cut = new Array<number>(n + 1).fill(0);
  best[0] = 0;
  for (let end = 1; end <= n; end++) {
    for (let start = 0; start < end; start++) {
      const cost = best[start] + groupCost(end - start, sortedLengths[end - 1]);
      if (cost < best[end]) {
        best[end] = cost;
        cut[end] = start;
      }
    }
  }
  const groups: [number, number][] = [];
  for (let end = n; end > 0; end = cut[end]) groups.unshift([cut[end], end]);
  return groups;
}

/** The sources' indices sorted by length and cut into lengthGroups: each group's sources, shortest first. */
export function groupsByLength(sources: number[][]): number[][] {
  const order = sources.map((_, i) => i).sort((a, b) => sources[a].length - sources[b].length);
  return lengthGroups(order.map((i) => sources[i].length)).map(([start, end]) => order.slice(start, end));
}

/**
 * Encodes the sources in groups of similar length (lengthGroups), then pads the outputs into one
 * batch, in the order of `sources`, for the decoder. Padding every source to the batch's longest
 * wastes encoder work: in batches of 32 consecutive dev sentences, 62% of the source positions
 * were padding and the encoder took 43% of the decoding time.
 */
function encodeByLength(model: Seq2Seq, sources: number[][], dirs: Direction[]): EncoderOutput {
  const groups = groupsByLength(sources);
  if (groups.length === 1) return model.encoder.encode(model.embeddings, sources, dirs);
  const lengths = sources.map((s) => s.length);
  const srcLen = Math.max(...lengths);
  const d = model.config.dModel;
  const parts: tf.Tensor3D[] = [];
  try {
    for (const rows of groups) {
      const enc = model.encoder.encode(model.embeddings, rows.map((i) => sources[i]), rows.map((i) => dirs[i]));
      // [n*S_g, d] -> [n, srcLen, d]; the decoder masks the padded positions by `lengths`.
      parts.push(tf.tidy(() => enc.out.reshape([rows.length, enc.srcLen, d]).pad([[0, 0], [0, srcLen - enc.srcLen], [0, 0]])));
      enc.out.dispose();
    }
    const positionInOrder = new Array<number>(sources.length);
    groups.flat().forEach((source, k) => (positionInOrder[source] = k));
    const byLength = tf.concat(parts);
    const out = takeRows(byLength, positionInOrder);
    byLength.dispose();
    const flat = out.reshape([sources.length * srcLen, d]) as tf.Tensor2D;
    out.dispose();
    return { out: flat, batch: sources.length, srcLen, lengths };
  } finally {
    tf.dispose(parts);
  }
}

/** A Seq2Seq on TensorFlow.js; the bookkeeping of rows happens on the host, the scores on the device. */
export class TfjsEngine implements DecoderEngine<DecoderState> {
  private static readonly engines = new WeakMap<Seq2Seq, TfjsEngine>();

  private constructor(readonly model: Seq2Seq) {}

  /** The one engine of a model. */
  static of(model: Seq2Seq): TfjsEngine {
    let engine = TfjsEngine.engines.get(model);
    if (engine === undefined) TfjsEngine.engines.set(model, (engine = new TfjsEngine(model)));
    return engine;
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  start(sources: number[][], dirs: Direction[], rowsPerSentence = 1): DecoderState {
    const enc = encodeByLength(this.model, sources, dirs);
    try {
      return this.model.decoder.start(enc, dirs, rowsPerSentence);
    } finally {
      enc.out.dispose();
    }
  }

  private forward(state: DecoderState, tokens: number[]): tf.Tensor2D {
    return this.model.decoder.forward(this.model.embeddings, state, tokens.map((t) => [t]));
  }

  logits(state: DecoderState, tokens: number[]): Float32Array {
    const logits = this.forward(state, tokens);
    const data = logits.dataSync() as Float32Array;
    logits.dispose();
    return data;
  }

  greedy(state: DecoderState, tokens: number[]): GreedyScores {
    const logits = this.forward(state, tokens);
    // log p(argmax) as the log of the largest softmax probability: wasm's fused Softmax kernel takes
    // ~0.6 ms on [32, 8000] logits where max - logSumExp takes ~3.8 ms (its Exp kernel alone ~3.5 ms).
    const [best, bestLogProb] = tf.tidy((): tf.Tensor[] => {
      const allowed = suppressed(this.config, logits) ?? logits;
      return [allowed.argMax(1), tf.log(tf.softmax(allowed).max(1))];
    });
    const scores = { best: best.dataSync(), bestLogProb: bestLogProb.dataSync() };
    tf.dispose([logits, best, bestLogProb]);
    return scores;
  }

  beam(state: DecoderState, tokens: number[], liveLogProb: number[], beam: number): BeamCandidates {
    const logits = this.forward(state, tokens);
    const [values, indices] = tf.tidy(() => {
      const logProbs = tf.logSoftmax(logits);
      const total = (suppressed(this.config, logProbs) ?? logProbs).add(tf.tensor2d(liveLogProb, [liveLogProb.length, 1]));
      const { values, indices } = tf.topk(total.reshape([liveLogProb.length / beam, beam * targetVocabSize(this.config)]), 2 * beam);
      return [values, indices];
    });
    const candidates = { scores: values.dataSync(), indices: indices.dataSync() };
    tf.dispose([logits, values, indices]);
    return candidates;
  }

  merge(a: DecoderState, b: DecoderState): DecoderState {
    return this.model.decoder.merge(a, b);
  }

  reorder(state: DecoderState, rows: number[]): void {
    this.model.decoder.reorder(state, rows);
  }

  keepRows(state: DecoderState, rows: number[]): void {
    this.model.decoder.keepRows(state, rows);
  }

  disposeState(state: DecoderState): void {
    this.model.decoder.disposeState(state);
  }

  sharesWeightsWith(other: DecoderEngine): boolean {
    if (!(other instanceof TfjsEngine)) return false;
    const [a, b] = [this.model, other.model];
    return a.embeddings === b.embeddings && a.encoder === b.encoder && a.decoder === b.decoder;
  }
}

let onnxEngineOf: ((model: Seq2Seq) => DecoderEngine) | undefined;

/**
 * Loads the ONNX Runtime engine (src/onnx/engine.ts): only where it serves, as its native library
 * takes ~0.3 s to load. Its graphs implement every architecture variant a config can name.
 */
export async function loadOnnxEngine(): Promise<void> {
  if (onnxEngineOf !== undefined) return;
  const { OrtEngine } = await import('../onnx/engine.ts');
  // Serving never runs the encoder or decoder on tfjs again, so their tfjs copies are freed (parts.ts).
  onnxEngineOf = (model) => OrtEngine.of(model, { dropTfjs: true });
}

/** The engine that serves `model`: on ONNX Runtime once loadOnnxEngine ran (initBackend chose it), else TensorFlow.js. */
export function servingEngineOf(model: Seq2Seq): DecoderEngine {
  return onnxEngineOf !== undefined ? onnxEngineOf(model) : TfjsEngine.of(model);
}

/** The engine that runs `model`: a Seq2Seq runs on TensorFlow.js; an engine is itself. */
export function engineOf(model: Seq2Seq | DecoderEngine): DecoderEngine {
  return model instanceof Seq2Seq ? TfjsEngine.of(model) : model;
}
