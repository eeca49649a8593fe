// The translation routes' door: the api_key check (--api-keys) and the per-client quotas, as a
// preHandler that runs after body validation and before any work is queued.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { ServerSettings } from '../settings.ts';
import { type ApiKey, KEY_PATTERN, type KeyStore } from './key-store.ts';
import { type Limits, Limiter } from './limiter.ts';
import { KeyRefusedError, QuotaExceededError, rateLimitHeaders } from './refusals.ts';

/** Routes that cost translation work; each takes an api_key and counts against its client's quota. */
export const GUARDED_ROUTES = new Set(['/translate', '/translate/:source/:target', '/detect', '/translate_file']);

/** A field of a JSON, form or multipart body (multipart fields may arrive as `{ value }`). */
export function bodyField(body: unknown, name: string): unknown {
  if (body === null || typeof body !== 'object') return undefined;
  const v = (body as Record<string, unknown>)[name];
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'value' in v) return (v as { value: unknown }).value;
  return v;
}

/** Characters a request asks to translate or detect: its q, one text or many, or an uploaded file's text. */
export function requestChars(body: unknown): number {
  const file = bodyField(body, 'file') as { data?: unknown } | undefined;
  if (file !== undefined && file !== null && Buffer.isBuffer(file.data)) return file.data.toString('utf8').length;
  const q = bodyField(body, 'q');
  if (typeof q === 'string') return q.length;
  if (Array.isArray(q)) return q.reduce((n: number, t) => n + (typeof t === 'string' ? t.length : 0), 0);
  return 0;
}

export interface Door {
  /** The quota counts (the server prunes ended windows through it). */
  readonly limiter: Limiter;
  /** The preHandler of every guarded route. */
  guard: preHandlerAsyncHookHandler;
}

/** The guard throws its refusals; the server's error table answers and counts them. */
export function createDoor(store: KeyStore, settings: ServerSettings): Door {
  const limiter = new Limiter(store.db);
  const guard = async (req: FastifyRequest, reply: FastifyReply) => {
    // LibreTranslate clients send an empty key when they have none; the `libretranslate` npm
    // client names the field apiKey.
    const key = [bodyField(req.body, 'api_key'), bodyField(req.body, 'apiKey')].find(
      (k): k is string => typeof k === 'string' && k !== '',
    );
    let apiKey: ApiKey | undefined;
    if (key === undefined) {
      if (settings.apiKeys)
        throw new KeyRefusedError(
          'key_missing',
          'this server requires an api_key: send the field "api_key" with a key from its operator',
        );
    } else {
      if (!KEY_PATTERN.test(key))
        throw new KeyRefusedError('key_invalid', 'api_key is malformed: a key is 8-128 letters, digits, "-" or "_"');
      apiKey = store.get(key);
      if (apiKey === undefined)
        throw new KeyRefusedError('key_invalid', 'api_key is not a valid key (unknown or removed)');
    }
    const limits: Limits = {
      reqPerMinute: apiKey?.reqPerMinute ?? settings.reqPerMinute,
      charsPerDay: apiKey?.charsPerDay ?? settings.charsPerDay,
    };
    const admission = limiter.admit(apiKey ? `key:${apiKey.key}` : `ip:${req.ip}`, limits, requestChars(req.body));
    if (!admission.ok) throw new QuotaExceededError(admission.reason, admission.message, admission.window);
    if (admission.window !== undefined) reply.headers(rateLimitHeaders(admission.window));
  };
  return { limiter, guard: guard as preHandlerAsyncHookHandler };
}
