// A window rather than a lifetime mean, so the estimate follows load and model changes.
const DURATION_WINDOW = 32;

/** Durations of the most recently finished batches. */
export class RecentBatchDurations {
  private readonly durationsMs: number[] = [];

  record(durationMs: number): void {
    this.durationsMs.push(durationMs);
    if (this.durationsMs.length > DURATION_WINDOW) this.durationsMs.shift();
  }

  /** 0 until a batch has finished. */
  meanMs(): number {
    if (this.durationsMs.length === 0) return 0;
    return this.durationsMs.reduce((sum, ms) => sum + ms, 0) / this.durationsMs.length;
  }
}

/**
 * Seconds until the sentences queued ahead on a lane should have been worked off: the number
 * of full batches they make, plus the one that may be in flight, times the mean batch
 * duration. Never below 1 s, the smallest useful Retry-After.
 */
export function estimateRetryAfterSeconds(
  sentencesAhead: number,
  maxBatchSentences: number,
  meanBatchMs: number,
): number {
  const batchesAhead = Math.ceil(sentencesAhead / maxBatchSentences) + 1;
  return Math.max(1, Math.ceil((batchesAhead * meanBatchMs) / 1000));
}
