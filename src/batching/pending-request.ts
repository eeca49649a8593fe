// One submitted request while the batcher holds it: where its results go, how many are still
// queued or missing, and when it gives up early (its deadline, or its caller's abort signal).
import type { Clock } from './clock.ts';
import { CancelledError, DeadlineError } from './errors.ts';
import type { QueueKey } from './batch-queue.ts';
import type { RejectionReason, SubmitOptions } from './types.ts';

export interface PendingRequest<K, R> {
  readonly key: K;
  readonly results: R[];
  /** Items without a result yet. */
  unresolved: number;
  /** Items still waiting in the key's queue. */
  queued: number;
  settled: boolean;
  readonly resolve: (results: R[]) => void;
  readonly reject: (error: unknown) => void;
  /** Undo the deadline timer and abort listener once the request is settled. */
  readonly cleanups: (() => void)[];
}

/**
 * Arms the request's deadline timer and abort listener; either calls `giveUp` with the reason and
 * the error to reject with. Both are undone by the request's cleanups.
 */
export function watchGiveUp<K extends QueueKey, R>(
  request: PendingRequest<K, R>,
  { deadline, signal }: SubmitOptions,
  clock: Clock,
  giveUp: (reason: RejectionReason, error: Error) => void,
): void {
  const pair = request.key.pair;
  if (deadline !== undefined) {
    const cancel = clock.setTimer(() => giveUp('deadline', new DeadlineError(pair, deadline)), deadline - clock.now());
    request.cleanups.push(cancel);
  }
  if (signal) {
    const onAbort = (): void => giveUp('cancelled', new CancelledError(pair));
    signal.addEventListener('abort', onAbort, { once: true });
    request.cleanups.push(() => signal.removeEventListener('abort', onAbort));
  }
}
