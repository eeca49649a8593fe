export {
  Batcher,
  type BatcherObserver,
  type BatcherOptions,
  type BatcherStats,
  type DispatchedBatch,
  type FinishedBatch,
  type RejectionReason,
  type SubmitOptions,
} from './batcher.ts';
export type { BatchItem, Lane, QueueKey } from './batch-queue.ts';
export { systemClock, type Clock } from './clock.ts';
export { CancelledError, DeadlineError, DrainingError, QueueFullError } from './errors.ts';
