// The batches running on each lane, and the choice of lane for the next batch: the least loaded of
// a pair's lanes that has a free slot. A lane runs at most `batchesPerLane` batches at a time, and
// one pair at most `batchesPerPair` of them, so that a hot pair leaves room for others.
import type { Lane } from './batch-queue.ts';

/** A dispatched batch not yet finished. */
export interface RunningBatch<E> {
  readonly lane: Lane;
  readonly pair: string;
  readonly entries: E[];
  readonly abort: AbortController;
}

interface LaneLoad {
  batches: number;
  pairBatches: number;
  sentences: number;
}

export class Lanes<E> {
  /** Dispatched batches not yet finished: what each lane runs. */
  readonly running = new Set<RunningBatch<E>>();

  constructor(
    /** The lanes a pair may run on, in order of preference. */
    readonly lanesOf: (pair: string) => readonly Lane[],
    private readonly batchesPerLane: number,
    private readonly batchesPerPair: number,
  ) {}

  /** Of the pair's lanes with a free slot, the one running the fewest sentences, then the fewest batches, then the first listed. */
  leastLoadedFreeLane(pair: string): Lane | undefined {
    let best: ({ lane: Lane } & LaneLoad) | undefined;
    for (const lane of this.lanesOf(pair)) {
      const load = this.laneLoad(lane, pair);
      // batchesPerPair caps one pair's share of each lane, so a hot pair leaves room for others.
      if (load.batches >= this.batchesPerLane || load.pairBatches >= this.batchesPerPair) continue;
      if (
        !best ||
        load.sentences < best.sentences ||
        (load.sentences === best.sentences && load.batches < best.batches)
      )
        best = { lane, ...load };
    }
    return best?.lane;
  }

  /** What a lane runs now: all its batches, those of `pair`, and their sentences. */
  private laneLoad(lane: Lane, pair: string): LaneLoad {
    let batches = 0;
    let pairBatches = 0;
    let sentences = 0;
    for (const running of this.running) {
      if (running.lane !== lane) continue;
      batches++;
      if (running.pair === pair) pairBatches++;
      sentences += running.entries.length;
    }
    return { batches, pairBatches, sentences };
  }
}

export function positiveLimit(name: string, value: number | undefined, fallback: number): number {
  const limit = value ?? fallback;
  if (!Number.isFinite(limit) || limit < 1) throw new RangeError(`${name} must be at least 1, got ${limit}`);
  return limit;
}

export function nonNegativeLimit(name: string, value: number | undefined, fallback: number): number {
  const limit = value ?? fallback;
  if (!Number.isFinite(limit) || limit < 0) throw new RangeError(`${name} must be at least 0, got ${limit}`);
  return limit;
}
