// Batched greedy and beam search over the incremental decoder. Bookkeeping (which hypotheses
// live, finish, or reach their length limit) happens on the CPU; the device computes logits and
// the top candidates.
import * as tf from '@tensorflow/tfjs';
import { targetVocabSize } from './config.ts';
import type { Seq2Seq } from './model.ts';
import { forcedPrefix, suppressed } from './prompt.ts';
import { takeRows } from './ops.ts';
import type { DecoderState, Direction } from './transformer.ts';

export interface DecodeOptions {
  bosId: number;
  eosId: number;
  /** 1 = greedy. */
  beamSize?: number;
  /** Hypotheses returned per sentence (at most beamSize). */
  nBest?: number;
  /** GNMT length penalty exponent: scores are divided by ((5 + length) / 6) ^ alpha. */
  lengthPenalty?: number;
  /** Longest output in tokens; by default it follows each source's length. */
  maxLength?: number;
  /** Decode exactly maxLength tokens whatever the model predicts (benchmarks). */
  ignoreEos?: boolean;
}

export interface Hypothesis {
  /** Output tokens, without BOS and EOS. */
  tokens: number[];
  /** Sum of the tokens' log-probabilities (EOS included when produced). */
  logProb: number;
  /** logProb after the length penalty: what hypotheses are ranked by. */
  score: number;
}

/** The default output limit for a source of `srcLen` tokens, capped by the model's maximum length. */
export function defaultMaxLength(srcLen: number, modelMax: number): number {
  return Math.min(modelMax, Math.ceil(1.5 * srcLen) + 10);
}

function lengthPenalty(length: number, alpha: number): number {
  return Math.pow((5 + length) / 6, alpha);
}

/** Translates a batch of tokenized sources; returns the n best hypotheses of each, best first. */
export function decode(model: Seq2Seq, sources: number[][], dirs: Direction[], opts: DecodeOptions): Hypothesis[][] {
  if (sources.length === 0) return [];
  if (sources.length !== dirs.length) throw new Error(`${sources.length} sources but ${dirs.length} directions`);
  const beam = opts.beamSize ?? 1;
  if (beam === 1) {
    const results = new Array<Hypothesis[]>(sources.length);
    const batch = new GreedyBatch<number>(model, opts);
    try {
      batch.add(sources, dirs, sources.map((_, i) => i), opts.maxLength);
      while (batch.size > 0) for (const { tag, hypothesis } of batch.step()) results[tag] = [hypothesis];
    } finally {
      batch.dispose();
    }
    return results;
  }
  const search = new BeamSearch(model, sources, dirs, opts);
  try {
    while (!search.done) search.step();
    return search.results();
  } finally {
    search.dispose();
  }
}

function outputLimits(model: Seq2Seq, sources: number[][], maxLength: number | undefined): number[] {
  const modelMax = model.config.maxLength;
  return sources.map((s) => Math.min(modelMax, maxLength ?? defaultMaxLength(s.length, modelMax)));
}

type Encoded = ReturnType<Seq2Seq['encoder']['encode']>;

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

/**
 * Encodes the sources in groups of similar length (lengthGroups), then pads the outputs into one
 * batch, in the order of `sources`, for the decoder. Padding every source to the batch's longest
 * wastes encoder work: in batches of 32 consecutive dev sentences, 62% of the source positions
 * were padding and the encoder took 43% of the decoding time.
 */
function encodeByLength(model: Seq2Seq, sources: number[][], dirs: Direction[]): Encoded {
  const order = sources.map((_, i) => i).sort((a, b) => sources[a].length - sources[b].length);
  const groups = lengthGroups(order.map((i) => sources[i].length));
  if (groups.length === 1) return model.encoder.encode(model.embeddings, sources, dirs);
  const lengths = sources.map((s) => s.length);
  const srcLen = Math.max(...lengths);
  const d = model.config.dModel;
  const parts: tf.Tensor3D[] = [];
  try {
    for (const [start, end] of groups) {
      const rows = order.slice(start, end);
      const enc = model.encoder.encode(model.embeddings, rows.map((i) => sources[i]), rows.map((i) => dirs[i]));
      // [n*S_g, d] -> [n, srcLen, d]; the decoder masks the padded positions by `lengths`.
      parts.push(tf.tidy(() => enc.out.reshape([rows.length, enc.srcLen, d]).pad([[0, 0], [0, srcLen - enc.srcLen], [0, 0]])));
      enc.out.dispose();
    }
    const positionInOrder = new Array<number>(sources.length);
    order.forEach((source, k) => (positionInOrder[source] = k));
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

interface GreedyRow<Tag> {
  tag: Tag;
  tokens: number[];
  logProb: number;
  limit: number;
  /** Tokens fed to the decoder so far: the row's next position. */
  fed: number;
  /** Tokens still to be output whatever the logits (the target language token), then fed. */
  forced: number[];
  next: number;
  done: boolean;
}

/**
 * Greedy decoding of a batch that sentences may join while it runs (iteration-level, or
 * continuous, batching): add() merges new sentences into the decoder state and step() advances
 * every unfinished one by a token. A finished sentence leaves at once, so a long sentence no longer
 * holds a batch of short ones back: in FIFO batches of 32 dev sentences, 239 of 571 steps ran for
 * 4 rows or fewer at the fixed cost of a full step. Each row decodes exactly as it would alone.
 * `Tag` is the caller's handle on a sentence; greedy is the only search that batches this way.
 */
export class GreedyBatch<Tag> {
  private state: DecoderState | undefined;
  private rows: GreedyRow<Tag>[] = [];

  constructor(private readonly model: Seq2Seq, private readonly opts: Omit<DecodeOptions, 'beamSize' | 'nBest' | 'maxLength'>) {}

  /** Unfinished sentences. */
  get size(): number {
    return this.rows.filter((r) => !r.done).length;
  }

  /** Adds sentences, which decode from the next step on; `maxLength` as in DecodeOptions. */
  add(sources: number[][], dirs: Direction[], tags: Tag[], maxLength?: number): void {
    if (sources.length === 0) return;
    if (sources.length !== dirs.length || sources.length !== tags.length) throw new Error(`${sources.length} sources, ${dirs.length} directions and ${tags.length} tags`);
    const limits = outputLimits(this.model, sources, maxLength);
    const enc = encodeByLength(this.model, sources, dirs);
    let fresh: DecoderState;
    try {
      fresh = this.model.decoder.start(enc, dirs);
    } finally {
      enc.out.dispose();
    }
    this.compact();
    try {
      this.state = this.state === undefined ? fresh : this.model.decoder.merge(this.state, fresh);
    } catch (err) {
      this.model.decoder.disposeState(fresh); // the running rows are left as they were
      throw err;
    }
    for (const [i, tag] of tags.entries()) {
      this.rows.push({ tag, tokens: [], logProb: 0, limit: limits[i], fed: 0, forced: forcedPrefix(this.model.config, dirs[i]), next: this.opts.bosId, done: false });
    }
  }

  /** One decoder step for every unfinished sentence; returns those that finished in it. */
  step(): { tag: Tag; hypothesis: Hypothesis }[] {
    if (this.state === undefined) return [];
    const { eosId, ignoreEos } = this.opts;
    const logits = this.model.decoder.forward(this.model.embeddings, this.state, this.rows.map((r) => [r.next]));
    // log p(argmax) as the log of the largest softmax probability: wasm's fused Softmax kernel takes
    // ~0.6 ms on [32, 8000] logits where max - logSumExp takes ~3.8 ms (its Exp kernel alone ~3.5 ms).
    const [best, bestLogProb] = tf.tidy((): tf.Tensor[] => {
      const allowed = suppressed(this.model.config, logits) ?? logits;
      return [allowed.argMax(1), tf.log(tf.softmax(allowed).max(1))];
    });
    const next = best.dataSync();
    const lp = bestLogProb.dataSync();
    tf.dispose([logits, best, bestLogProb]);
    const finished: { tag: Tag; hypothesis: Hypothesis }[] = [];
    this.rows.forEach((r, row) => {
      r.fed++;
      if (!r.done && r.forced.length > 0) {
        r.next = r.forced.shift()!;
        return;
      }
      r.next = next[row];
      if (r.done) return; // finished, waiting for the next compaction
      r.logProb += lp[row];
      if (r.next === eosId && !ignoreEos) r.done = true;
      else r.tokens.push(r.next);
      if (r.tokens.length >= r.limit) r.done = true;
      if (r.done) {
        const length = r.tokens.length + (r.tokens.length < r.limit ? 1 : 0);
        finished.push({ tag: r.tag, hypothesis: { tokens: r.tokens, logProb: r.logProb, score: r.logProb / lengthPenalty(length, this.opts.lengthPenalty ?? 0.6) } });
      }
    });
    const doneRows = this.rows.length - this.size;
    // Compacting copies the whole state, so it waits for an eighth of the rows to be done (on batches of
    // 32 consecutive dev sentences that beat compacting at every finish, 1/100, and at a quarter), or
    // until a finished row would run past the position table.
    if (doneRows >= this.rows.length / 8 || this.rows.some((r) => r.done && r.fed >= this.model.config.maxLength)) this.compact();
    return finished;
  }

  /** Drops the finished rows from the state. */
  private compact(): void {
    if (this.state === undefined) return;
    const keep = this.rows.flatMap((r, row) => (r.done ? [] : [row]));
    if (keep.length === this.rows.length) return;
    if (keep.length === 0) {
      this.dispose();
      return;
    }
    this.model.decoder.keepRows(this.state, keep);
    this.rows = keep.map((row) => this.rows[row]);
  }

  /** Abandons the unfinished sentences whose tag matches: they stop counting and leave the state at the next compaction. */
  cancel(matches: (tag: Tag) => boolean): void {
    for (const r of this.rows) if (!r.done && matches(r.tag)) r.done = true;
  }

  /** Frees the decoder state; unfinished sentences are abandoned. */
  dispose(): void {
    if (this.state !== undefined) this.model.decoder.disposeState(this.state);
    this.state = undefined;
    this.rows = [];
  }
}

interface Live {
  tokens: number[];
  logProb: number;
  /** The token fed at the next step (the last output, or a forced one). */
  input?: number;
}

/**
 * Beam search over one batch, a decoder step at a time (step() until done), so that a scheduler can
 * interleave it with other batches. Row b*beam + j of the state holds sentence b's j-th live
 * hypothesis; at the start only j = 0 is real.
 */
export class BeamSearch {
  private readonly dirs: Direction[];
  private readonly beam: number;
  private readonly limits: number[];
  private readonly finished: Hypothesis[][];
  private readonly sentenceDone: boolean[];
  private state: DecoderState | undefined;
  private live: Live[];
  private inputs: number[];
  private steps = 0;
  /** Per sentence, the tokens forced as its first outputs. */
  private readonly forced: number[][];

  constructor(private readonly model: Seq2Seq, sources: number[][], dirs: Direction[], private readonly opts: DecodeOptions) {
    if (sources.length !== dirs.length) throw new Error(`${sources.length} sources but ${dirs.length} directions`);
    this.dirs = dirs;
    this.beam = opts.beamSize ?? 1;
    this.limits = outputLimits(model, sources, opts.maxLength);
    this.finished = dirs.map(() => []);
    this.sentenceDone = dirs.map(() => false);
    this.live = Array.from({ length: dirs.length * this.beam }, () => ({ tokens: [], logProb: 0 }));
    this.inputs = this.live.map(() => opts.bosId);
    this.forced = dirs.map((d) => forcedPrefix(model.config, d));
    const enc = encodeByLength(model, sources, dirs);
    try {
      this.state = model.decoder.start(enc, dirs, this.beam);
    } finally {
      enc.out.dispose();
    }
  }

  /** Hypotheses the next step decodes (sentences x beam), 0 once done: the step's cost in rows. */
  get rows(): number {
    return this.state === undefined ? 0 : this.live.length;
  }

  /** Whether every sentence has its hypotheses: results() is final, and the decoder state is freed. */
  get done(): boolean {
    return this.state === undefined;
  }

  /** One decoder step for every live hypothesis. */
  step(): void {
    if (this.state === undefined) return;
    const { model, opts, beam, live, finished } = this;
    const batch = this.dirs.length;
    const vocab = targetVocabSize(model.config); // the output vocabulary
    const step = this.steps++;
    const logits = model.decoder.forward(model.embeddings, this.state, this.inputs.map((t) => [t]));
    const liveLogProb = live.map((h, row) => (step === 0 && row % beam !== 0 ? -Infinity : h.logProb));
    const [values, indices] = tf.tidy(() => {
      const logProbs = tf.logSoftmax(logits);
      const total = (suppressed(model.config, logProbs) ?? logProbs).add(tf.tensor2d(liveLogProb, [batch * beam, 1]));
      const { values, indices } = tf.topk(total.reshape([batch, beam * vocab]), 2 * beam);
      return [values, indices];
    });
    const candScore = values.dataSync();
    const candIndex = indices.dataSync();
    tf.dispose([logits, values, indices]);
    const finish = (b: number, tokens: number[], logProb: number, length: number) =>
      finished[b].push({ tokens, logProb, score: logProb / lengthPenalty(length, opts.lengthPenalty ?? 0.6) });
    const parents: number[] = [];
    const nextLive: Live[] = [];
    for (let b = 0; b < batch; b++) {
      const chosen: { parent: number; token: number; logProb: number }[] = [];
      const forcedLength = this.forced[b].length;
      if (step < forcedLength) {
        // A forced token extends the one live hypothesis at no cost, as Transformers' forced_bos_token_id does.
        chosen.push({ parent: b * beam, token: this.forced[b][step], logProb: live[b * beam].logProb });
      } else if (!this.sentenceDone[b]) {
        for (let r = 0; r < 2 * beam && chosen.length < beam; r++) {
          const c = candIndex[b * 2 * beam + r];
          const parent = b * beam + Math.floor(c / vocab);
          const token = c % vocab;
          const logProb = candScore[b * 2 * beam + r];
          if (token === opts.eosId && !opts.ignoreEos) {
            // An EOS ranked among the best `beam` ends a hypothesis; one ranked lower is ignored.
            if (r < beam) finish(b, live[parent].tokens, logProb, live[parent].tokens.length + 1);
          } else {
            chosen.push({ parent, token, logProb });
          }
        }
        const length = step + 1 - forcedLength;
        if (length >= this.limits[b]) {
          for (const c of chosen) finish(b, [...live[c.parent].tokens, c.token], c.logProb, length);
        }
        if (finished[b].length >= beam || length >= this.limits[b]) this.sentenceDone[b] = true;
      }
      // Finished sentences keep placeholder rows so the batch keeps its shape.
      while (chosen.length < beam) chosen.push({ parent: b * beam, token: opts.eosId, logProb: -Infinity });
      for (const c of chosen) {
        parents.push(c.parent);
        const output = step < forcedLength ? live[c.parent].tokens : [...live[c.parent].tokens, c.token];
        nextLive.push({ tokens: output, logProb: c.logProb, input: c.token });
      }
    }
    if (this.sentenceDone.every(Boolean)) {
      this.dispose();
      return;
    }
    model.decoder.reorder(this.state, parents);
    this.live = nextLive;
    this.inputs = nextLive.map((h) => h.input!);
  }

  /** The n best hypotheses of each sentence, best first (complete once done). */
  results(): Hypothesis[][] {
    const nBest = Math.min(this.opts.nBest ?? 1, this.beam);
    return this.finished.map((hyps) => [...hyps].sort((a, b) => b.score - a.score).slice(0, nBest));
  }

  /** Frees the decoder state; a search not yet done is abandoned. */
  dispose(): void {
    if (this.state !== undefined) this.model.decoder.disposeState(this.state);
    this.state = undefined;
  }
}
