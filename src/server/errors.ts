// Every way a request can fail, and its answer: HTTP status, rejection reason (the label of
// taskmoe_rejected_total) and headers. The app's error handler answers and counts from this table
// alone, so each rejection is counted once, in one place. The batcher's errors are declared with
// the batcher (it knows no HTTP); the server's own are declared here.
import { CancelledError, DeadlineError, DrainingError, QueueFullError } from '../batching/index.ts';
import { InputError } from '../translator/index.ts';

export type RejectReason = 'queue_full' | 'deadline' | 'cancelled' | 'draining' | 'not_ready' | 'invalid' | 'too_large' | 'engine_error';

/** The engine failed (a worker crashed or threw); the request may succeed if retried. */
export class EngineError extends Error {}

/** A caller's mistake found by the engine (e.g. an unsupported pair in a checkpoint it loaded). */
export class EngineInputError extends Error {}

/** The batch was cancelled before it finished: the worker drops its unfinished sentences. */
export class BatchCancelledError extends Error {}

/** A request that arrived after shutdown began. */
export class ShuttingDownError extends Error {}

/** A request that arrived while the engine workers warm up. */
export class NotReadyError extends Error {}

/** How a failed request is answered; `reason` is undefined for a server fault (500, not a rejection). */
export interface ErrorAnswer {
  status: number;
  message: string;
  reason?: RejectReason;
  headers?: Record<string, string>;
}

interface Rule<E extends Error> {
  type: abstract new (...args: never[]) => E;
  answer: (err: E) => ErrorAnswer;
}

const rule = <E extends Error>(type: Rule<E>['type'], answer: (err: E) => ErrorAnswer): Rule<Error> => ({ type, answer: answer as (err: Error) => ErrorAnswer });
const draining = (): ErrorAnswer => ({ status: 503, message: 'the server is shutting down; retry on another instance', reason: 'draining' });

const RULES: Rule<Error>[] = [
  rule(QueueFullError, (e) => ({
    status: 429,
    message: `too many queued requests for ${e.pair}; retry after ${e.retryAfterSeconds} s`,
    reason: 'queue_full',
    headers: { 'retry-after': String(e.retryAfterSeconds) },
  })),
  rule(DeadlineError, () => ({ status: 504, message: 'the translation did not finish within the request deadline', reason: 'deadline' })),
  rule(DrainingError, draining),
  rule(ShuttingDownError, draining),
  rule(NotReadyError, () => ({ status: 503, message: 'the server is warming up; retry shortly', reason: 'not_ready' })),
  // The client is gone; the status is for the logs only.
  rule(CancelledError, () => ({ status: 499, message: 'the client closed the request', reason: 'cancelled' })),
  rule(BatchCancelledError, () => ({ status: 499, message: 'the client closed the request', reason: 'cancelled' })),
  rule(InputError, (e) => ({ status: 400, message: e.message, reason: 'invalid' })),
  rule(EngineInputError, (e) => ({ status: 400, message: e.message, reason: 'invalid' })),
  rule(EngineError, (e) => ({ status: 503, message: `the translation engine failed: ${e.message}`, reason: 'engine_error', headers: { 'retry-after': '1' } })),
];

/** What fastify reports: a schema violation, an over-large body, other client errors. */
interface FastifyErrorFields {
  statusCode?: number;
  code?: string;
  validation?: unknown;
}

/** The answer to any error a route throws; `bodyLimitBytes` names the limit in the 413. */
export function answerFor(err: Error & FastifyErrorFields, bodyLimitBytes: number): ErrorAnswer {
  const known = RULES.find((r) => err instanceof r.type);
  if (known !== undefined) return known.answer(err);
  if (err.validation !== undefined) return { status: 400, message: `invalid request: ${err.message}`, reason: 'invalid' };
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 413, message: `request body is larger than the limit of ${bodyLimitBytes} bytes`, reason: 'too_large' };
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return { status: err.statusCode, message: err.message, reason: 'invalid' };
  return { status: 500, message: `internal error: ${err.message}` };
}
