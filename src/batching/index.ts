export { Batcher } from './batcher.ts';
export type {
  BatcherObserver,
  BatcherOptions,
  BatcherStats,
  DispatchedBatch,
  FinishedBatch,
  RejectionReason,
  SubmitOptions,
} from './types.ts';
export type { BatchItem, Lane, QueueKey } from './batch-queue.ts';
export { systemClock, type Clock } from './clock.ts';
export { CancelledError, DeadlineError, DrainingError, QueueFullError } from './errors.ts';
