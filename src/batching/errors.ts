// Each rejection a caller of Batcher.submit can see has its own class so the HTTP layer can
// map it to a status code (429 / 504 / 499 / 503) with `instanceof`.

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';

  constructor(
    readonly pair: string,
    readonly maxQueuedSentences: number,
    readonly retryAfterSeconds: number,
  ) {
    super(
      `queue for ${pair} is full (limit ${maxQueuedSentences} queued sentences); ` +
        `retry after ${retryAfterSeconds} s`,
    );
  }
}

export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';

  constructor(
    readonly pair: string,
    /** Milliseconds since the epoch, on the batcher's clock. */
    readonly deadline: number,
  ) {
    super(`request for ${pair} missed its deadline (${deadline} ms since epoch)`);
  }
}

export class CancelledError extends Error {
  override readonly name = 'CancelledError';

  constructor(readonly pair: string) {
    super(`request for ${pair} was cancelled by its caller`);
  }
}

export class DrainingError extends Error {
  override readonly name = 'DrainingError';

  constructor(readonly pair: string) {
    super(`batcher is draining and accepts no new requests (pair ${pair})`);
  }
}
