// Every way a request can fail, and its answer: HTTP status, rejection reason (the label of
// taskmoe_rejected_total) and headers. The app's error handler answers and counts from this table
// alone, so each rejection is counted once, in one place. The batcher's errors are declared with
// the batcher (it knows no HTTP); the server's own are declared here.
import { CancelledError, DeadlineError, DrainingError, QueueFullError } from '../batching/index.ts';
import { MarkupError } from '../text/html.ts';
import { CatalogError } from '../text/po.ts';
import { InputError } from '../translator/index.ts';
import { ClientShareError, CostLimitError } from './cost.ts';

import { KeyRefusedError, QuotaExceededError, rateLimitHeaders } from './front-door/refusals.ts';

export type RejectReason =
  | 'queue_full'
  | 'deadline'
  | 'cancelled'
  | 'draining'
  | 'not_ready'
  | 'invalid'
  | 'too_large'
  | 'too_costly'
  | 'client_share'
  | 'engine_error'
  | 'key_missing'
  | 'key_invalid'
  | 'rate_requests'
  | 'rate_chars';

/** The engine failed (a worker crashed or threw); the request may succeed if retried. */
export class EngineError extends Error {}

/** The pair's worker is down (crashed, or failed to start) and restarts: retry after the given seconds. */
export class EngineUnavailableError extends EngineError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

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

const rule = <E extends Error>(type: Rule<E>['type'], answer: (err: E) => ErrorAnswer): Rule<Error> => ({
  type,
  answer: answer as (err: Error) => ErrorAnswer,
});
// Every 503 says when to retry. A draining server also closes the connection, so the client's next
// request opens a new one, which the load balancer sends to another instance.
const draining = (): ErrorAnswer => ({
  status: 503,
  message: 'the server is shutting down; retry on another instance',
  reason: 'draining',
  headers: { 'retry-after': '1', connection: 'close' },
});

const RULES: Rule<Error>[] = [
  rule(KeyRefusedError, (e) => ({ status: 403, message: e.message, reason: e.reason })),
  rule(QuotaExceededError, (e) => ({
    status: 429,
    message: e.message,
    reason: e.reason,
    headers: { 'retry-after': String(e.window.resetSeconds), ...rateLimitHeaders(e.window) },
  })),
  rule(QueueFullError, (e) => ({
    status: 429,
    message: `too many queued requests for ${e.pair}; retry after ${e.retryAfterSeconds} s`,
    reason: 'queue_full',
    headers: { 'retry-after': String(e.retryAfterSeconds) },
  })),
  rule(DeadlineError, () => ({
    status: 504,
    message: 'the translation did not finish within the request deadline',
    reason: 'deadline',
  })),
  rule(DrainingError, draining),
  rule(ShuttingDownError, draining),
  rule(NotReadyError, () => ({
    status: 503,
    message: 'the server is warming up; retry shortly',
    reason: 'not_ready',
    headers: { 'retry-after': '1' },
  })),
  rule(CostLimitError, (e) => ({ status: 400, message: e.message, reason: 'too_costly' })),
  rule(ClientShareError, (e) => ({
    status: 429,
    message: e.message,
    reason: 'client_share',
    headers: { 'retry-after': String(e.retryAfterSeconds) },
  })),
  // The client is gone; the status is for the logs only.
  rule(CancelledError, () => ({ status: 499, message: 'the client closed the request', reason: 'cancelled' })),
  rule(BatchCancelledError, () => ({ status: 499, message: 'the client closed the request', reason: 'cancelled' })),
  rule(InputError, (e) => ({ status: 400, message: e.message, reason: 'invalid' })),
  rule(EngineInputError, (e) => ({ status: 400, message: e.message, reason: 'invalid' })),
  rule(EngineUnavailableError, (e) => ({
    status: 503,
    message: `the translation engine failed: ${e.message}`,
    reason: 'engine_error',
    headers: { 'retry-after': String(e.retryAfterSeconds) },
  })),
  // Malformed html or .po: the message names the text or file and the line.
  rule(MarkupError, (e) => ({ status: 400, message: `malformed html: ${e.message}`, reason: 'invalid' })),
  rule(CatalogError, (e) => ({ status: 400, message: `malformed .po catalog: ${e.message}`, reason: 'invalid' })),
  rule(EngineError, (e) => ({
    status: 503,
    message: `the translation engine failed: ${e.message}`,
    reason: 'engine_error',
    headers: { 'retry-after': '1' },
  })),
];

/** What fastify reports: a schema violation, an over-large body, other client errors. */
interface FastifyErrorFields {
  statusCode?: number;
  code?: string;
  validation?: unknown;
}

/** The answer to any error a route throws; the limits are named in 413s. */
export function answerFor(
  err: Error & FastifyErrorFields,
  { bodyLimitBytes, maxFileBytes }: { bodyLimitBytes: number; maxFileBytes: number },
): ErrorAnswer {
  const known = RULES.find((r) => err instanceof r.type);
  if (known !== undefined) return known.answer(err);
  if (err.validation !== undefined)
    return { status: 400, message: `invalid request: ${err.message}`, reason: 'invalid' };
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return {
      status: 413,
      message: `request body is larger than the limit of ${bodyLimitBytes} bytes`,
      reason: 'too_large',
    };
  }
  if (err.code === 'FST_REQ_FILE_TOO_LARGE') {
    return {
      status: 413,
      message: `the uploaded file is larger than the limit of ${maxFileBytes} bytes`,
      reason: 'too_large',
    };
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)
    return { status: err.statusCode, message: err.message, reason: 'invalid' };
  return { status: 500, message: `internal error: ${err.message}` };
}
