// The translation routes' door: the api_key check (--api-keys) and the per-client quotas, as a
// preHandler that runs after body validation and before any work is queued.
import type { preHandlerHookHandler } from 'fastify';
import type { ServerSettings } from '../settings.ts';
import { KEY_PATTERN, type KeyStore } from './key-store.ts';
import { type Admission, type Limits, Limiter } from './limiter.ts';
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
  guard: preHandlerHookHandler;
}

/** The key a body carries: LibreTranslate clients send an empty one when they have none; the `libretranslate` npm client names the field apiKey. */
function sentKey(body: unknown): string | undefined {
  for (const name of ['api_key', 'apiKey']) {
    const k = bodyField(body, name);
    if (typeof k === 'string' && k !== '') return k;
  }
  return undefined;
}

/** The guard throws its refusals; the server's error table answers and counts them. */
export function createDoor(store: KeyStore, settings: ServerSettings): Door {
  const limiter = new Limiter(store.db);
  // The key is looked up on every request (a read, no transaction): a key removed by `taskmoe keys
  // remove` is refused from its next request. The quota needs the database only when this process's
  // slice of the client's window is used up (limiter.ts).
  const serverLimits: Limits = { reqPerMinute: settings.reqPerMinute, charsPerDay: settings.charsPerDay };
  const admit = (key: string | undefined, ip: string, chars: number) => {
    if (key === undefined) return limiter.admit(`ip:${ip}`, serverLimits, chars);
    const own = store.limitsOf(key);
    if (own === undefined) throw new KeyRefusedError('key_invalid', 'api_key is not a valid key (unknown or removed)');
    const limits: Limits = {
      reqPerMinute: own[0] ?? settings.reqPerMinute,
      charsPerDay: own[1] ?? settings.charsPerDay,
    };
    return limiter.admit(`key:${key}`, limits, chars);
  };
  // A callback hook, not an async one: the request goes on in the same tick, without a promise
  // and a microtask of its own.
  const guard: preHandlerHookHandler = (req, reply, done) => {
    let admission: Admission;
    try {
      const key = sentKey(req.body);
      if (key === undefined && settings.apiKeys)
        throw new KeyRefusedError(
          'key_missing',
          'this server requires an api_key: send the field "api_key" with a key from its operator',
        );
      if (key !== undefined && !KEY_PATTERN.test(key))
        throw new KeyRefusedError('key_invalid', 'api_key is malformed: a key is 8-128 letters, digits, "-" or "_"');
      admission = admit(key, req.ip, requestChars(req.body));
    } catch (err) {
      return done(err as Error);
    }
    if (!admission.ok) return done(new QuotaExceededError(admission.reason, admission.message, admission.window));
    if (admission.window !== undefined) reply.headers(rateLimitHeaders(admission.window));
    done();
  };
  return { limiter, guard };
}
