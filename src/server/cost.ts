// What a request costs the engine, in decoder row-steps: each text decodes `beam` rows for at
// most its output limit. A request over --max-request-cost is refused (400); the cost one client
// has queued and running on one engine worker is bounded by --max-client-cost (429), so no one
// client can fill a worker that other clients share.
import { defaultMaxLength } from '../models/decoding.ts';

/** Texts x beam x longest output in tokens, summed over the texts (each text's own output limit). */
export function requestCost(
  sourceLengths: readonly number[],
  beam: number,
  maxLength: number | undefined,
  modelMaxLength: number,
): number {
  return sourceLengths.reduce(
    (sum, n) => sum + beam * Math.min(modelMaxLength, maxLength ?? defaultMaxLength(n, modelMaxLength)),
    0,
  );
}

/** A request whose cost alone exceeds the per-request limit. */
export class CostLimitError extends Error {
  constructor(
    readonly cost: number,
    readonly limit: number,
  ) {
    super(
      `the request costs ${cost} decoder row-steps (texts x beam x longest output); the limit is ${limit} (--max-request-cost): send fewer texts, a smaller beam_size or alternatives, or a lower max_length`,
    );
  }
}

/** A client already holds its share of a worker. */
export class ClientShareError extends Error {
  constructor(
    readonly client: string,
    readonly held: number,
    readonly cost: number,
    readonly limit: number,
    readonly retryAfterSeconds: number,
  ) {
    super(
      `this client has ${held} decoder row-steps queued or running on this engine worker; ${cost} more would exceed its share of ${limit} (--max-client-cost); retry after ${retryAfterSeconds} s`,
    );
  }
}

/** Cost held per (client, worker); reserve() before queueing, release when the request ends. */
export class ClientShares {
  private readonly held = new Map<string, number>();

  constructor(
    private readonly limit: number,
    private readonly retryAfterSeconds: () => number = () => 1,
  ) {}

  /** Reserves `cost` for the client on the worker, returning its release; throws ClientShareError past the share. */
  reserve(client: string, worker: string, cost: number): () => void {
    const key = `${client}\u0000${worker}`;
    const held = this.held.get(key) ?? 0;
    // A client with nothing held may always send one request within --max-request-cost.
    if (held > 0 && held + cost > this.limit)
      throw new ClientShareError(client, held, cost, this.limit, this.retryAfterSeconds());
    this.held.set(key, held + cost);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? cost) - cost;
      if (left > 0) this.held.set(key, left);
      else this.held.delete(key);
    };
  }

  /** Cost a client holds on a worker (tests and metrics). */
  heldBy(client: string, worker: string): number {
    return this.held.get(`${client}\u0000${worker}`) ?? 0;
  }
}
