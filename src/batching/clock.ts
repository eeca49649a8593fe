/** Time source and timers of the batcher; injectable so tests can move time by hand. */
export interface Clock {
  /** Milliseconds since the epoch; request deadlines are expressed on this clock. */
  now(): number;
  /** Calls `callback` once after `delayMs`; the returned function cancels the call. */
  setTimer(callback: () => void, delayMs: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    return () => clearTimeout(timer);
  },
};
