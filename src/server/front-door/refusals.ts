// The front door's refusals, answered by the server's error table (server/errors.ts) like every
// other rejection, and counted there by reason (never by key or address).
import type { WindowState } from './limiter.ts';

/** 403: a key is required and missing, or the one given is malformed, unknown or removed. */
export class KeyRefusedError extends Error {
  constructor(
    readonly reason: 'key_missing' | 'key_invalid',
    message: string,
  ) {
    super(message);
  }
}

/** 429: the client's requests per minute or characters per day are used up. */
export class QuotaExceededError extends Error {
  constructor(
    readonly reason: 'rate_requests' | 'rate_chars',
    message: string,
    readonly window: WindowState,
  ) {
    super(`${message}; retry after ${window.resetSeconds} s`);
  }
}

/** The X-RateLimit-* headers of a window's state. */
export function rateLimitHeaders(w: WindowState): Record<string, string> {
  return {
    'x-ratelimit-limit': String(w.limit),
    'x-ratelimit-remaining': String(w.remaining),
    'x-ratelimit-reset': String(w.resetSeconds),
  };
}
