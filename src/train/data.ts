// Training examples and the batch sampler: directions drawn by temperature, sentences of similar
// length grouped under a token budget. The sampler's only state is its RNG, so saving that one
// number lets a resumed run draw exactly the batches an uninterrupted one would have.
import { type Corpus, directionsOf, pairsFor, temperatureWeights } from '../data/corpus.ts';
import { pairKey } from '../models/config.ts';
import type { Direction } from '../models/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import type { Rng } from '../util/random.ts';

export interface Example {
  dir: Direction;
  /** [<2xx>, ...pieces, EOS] */
  source: number[];
  /** [...pieces, EOS]: what the decoder must predict. */
  target: number[];
}

/** Longer side of an example: what it costs in a padded batch. */
export function exampleLength(e: Example): number {
  return Math.max(e.source.length, e.target.length);
}

/**
 * Tokenizes every pair of `corpus` for the directions the model serves, each file once for both
 * directions; pairs longer than maxLength on either side are dropped. Returns one list per direction.
 */
export function tokenizeCorpus(
  corpus: Corpus,
  tok: Tokenizer,
  pairs: string[],
  maxLength: number,
  maxPerDirection = Infinity,
): Map<string, Example[]> {
  const byDirection = new Map<string, Example[]>();
  const pieces = new Map<string, number[]>();
  const encoded = (text: string) => {
    let ids = pieces.get(text);
    if (ids === undefined) pieces.set(text, (ids = tok.encode(text)));
    return ids;
  };
  for (const dir of directionsOf(corpus.languages)) {
    if (!pairs.includes(pairKey(dir.source, dir.target))) continue;
    const examples: Example[] = [];
    for (const p of pairsFor(corpus.files, dir)) {
      if (examples.length >= maxPerDirection) break;
      const source = [tok.languageTagId(dir.target), ...encoded(p.source), tok.eosId];
      const target = [...encoded(p.target), tok.eosId];
      if (source.length <= maxLength && target.length <= maxLength) examples.push({ dir, source, target });
    }
    if (examples.length > 0) byDirection.set(pairKey(dir.source, dir.target), examples);
  }
  return byDirection;
}

/**
 * Draws batches with replacement: an anchor sentence (direction by temperature, then uniform),
 * then more sentences, each from a direction drawn by temperature and among that direction's
 * sentences within `slack` tokens of the anchor's length, until the next one would break the
 * token budget. Batches thus mix directions (which the load-balancing loss of task routing needs)
 * but hold sentences of similar length (little padding).
 */
export class BatchSampler {
  readonly directions: string[];
  readonly weights: number[];
  private readonly sorted: Example[][];
  private readonly lengths: Int32Array[];

  constructor(
    examples: Map<string, Example[]>,
    temperature: number,
    readonly batchTokens: number,
    readonly rng: Rng,
  ) {
    this.directions = [...examples.keys()];
    if (this.directions.length === 0) throw new Error('no training examples');
    this.sorted = this.directions.map((d) => [...examples.get(d)!].sort((a, b) => exampleLength(a) - exampleLength(b)));
    this.lengths = this.sorted.map((list) => Int32Array.from(list, exampleLength));
    this.weights = temperatureWeights(
      this.sorted.map((l) => l.length),
      temperature,
    );
  }

  // -> examples whose count × longest side stays within batchTokens (at least one)
  next(): Example[] {
    const first = this.rng.pick(this.weights);
    const anchor = this.sorted[first][Math.floor(this.rng.next() * this.sorted[first].length)];
    const length = exampleLength(anchor);
    const slack = Math.max(2, Math.ceil(length / 8));
    const batch = [anchor];
    let longest = length;
    for (;;) {
      const d = this.rng.pick(this.weights);
      const candidate = this.sorted[d][this.nearLength(d, length - slack, length + slack)];
      const newLongest = Math.max(longest, exampleLength(candidate));
      if ((batch.length + 1) * newLongest > this.batchTokens) return batch;
      batch.push(candidate);
      longest = newLongest;
    }
  }

  // -> a random index of direction d with length in [lo, hi], or the nearest one if none is
  private nearLength(d: number, lo: number, hi: number): number {
    const lengths = this.lengths[d];
    const from = lowerBound(lengths, lo);
    const to = lowerBound(lengths, hi + 1);
    if (to > from) return from + Math.floor(this.rng.next() * (to - from));
    return Math.min(from, lengths.length - 1);
  }
}

// first index whose value is >= x in an ascending array
function lowerBound(values: Int32Array, x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
