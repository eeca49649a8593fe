// The HTTP layer. A request's path: schema validation and tokenization here, then the batcher's
// queue for its pair, a batch, an engine worker, and back. Nothing here touches tensors.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Batcher, CancelledError, DeadlineError, DrainingError, QueueFullError } from '../batching/index.ts';
import { CheckpointReader } from '../models/checkpoint.ts';
import { type ModelConfig, pairKey, parsePair } from '../models/config.ts';
import { subnetworkTasks } from '../models/extract.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { InputError, type TranslateOptions, type Translation, checkDirection, checkSourceLength } from '../translator/index.ts';
import { type BatchResult, BatchCancelledError, EngineError, EngineInputError, EnginePool } from './engine-pool.ts';
import type { CacheSnapshot } from './engine-protocol.ts';
import { LANGUAGE_NAMES } from './languages.ts';
import { type RejectReason, ServerMetrics } from './metrics.ts';
import type { ServerSettings } from './settings.ts';
import { registerFrontDoor } from './front-door/index.ts';

/** An error answered with its status code and message. */
class HttpError extends Error {
  constructor(readonly statusCode: number, message: string, readonly reason?: RejectReason, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

interface TranslateBody {
  q: string | string[];
  source: string;
  target: string;
  format?: 'text';
  alternatives?: number;
  beam_size?: number;
  max_length?: number;
  api_key?: string;
}

/** One sentence of a request, as it travels through the batcher to a worker. */
interface SentenceWork {
  ids: number[];
  options: TranslateOptions;
}

function translateSchema(s: ServerSettings, maxLength: number) {
  return {
    body: {
      type: 'object',
      required: ['q', 'source', 'target'],
      additionalProperties: false,
      properties: {
        q: {
          anyOf: [
            { type: 'string', minLength: 1, maxLength: s.maxTextChars },
            { type: 'array', minItems: 1, maxItems: s.maxTexts, items: { type: 'string', minLength: 1, maxLength: s.maxTextChars } },
          ],
        },
        source: { type: 'string', minLength: 1 },
        target: { type: 'string', minLength: 1 },
        format: { type: 'string', enum: ['text'] },
        alternatives: { type: 'integer', minimum: 0, maximum: s.maxAlternatives },
        beam_size: { type: 'integer', minimum: 1, maximum: s.maxBeam },
        max_length: { type: 'integer', minimum: 1, maximum: maxLength },
        // Accepted so that LibreTranslate clients work unchanged; taskmoe has no API keys.
        api_key: { type: 'string' },
      },
    },
    params: {
      type: 'object',
      properties: { source: { type: 'string' }, target: { type: 'string' } },
    },
  };
}

export interface TaskmoeServer {
  app: FastifyInstance;
  metrics: ServerMetrics;
  pool: EnginePool;
  /** Resolves when the engine workers have warmed up and /readyz turns 200; rejects if they cannot start. */
  ready: Promise<void>;
  /** Stops readiness, finishes queued and running work within the grace period, closes everything. */
  shutdown(): Promise<void>;
}

/** Builds the app and starts its engine workers, which warm up in the background (see `ready`). */
export async function createServer(settings: ServerSettings, log: (msg: string) => void = () => {}): Promise<TaskmoeServer> {
  const reader = await CheckpointReader.open(settings.modelDir);
  const cfg = reader.config;
  const tokenizer = await Tokenizer.load(reader.tokenizerPath);
  if (tokenizer.vocabSize !== cfg.vocabSize) throw new Error(`${settings.modelDir}: vocabSize ${cfg.vocabSize} does not match its tokenizer (${tokenizer.vocabSize} pieces)`);
  const metrics = new ServerMetrics();
  const app = Fastify({
    bodyLimit: settings.bodyLimitBytes,
    // Strict validation: unknown fields and wrong types are 400s, not silently dropped or coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  // Before any route: the OpenAPI generator and the key/quota guard must see every route.
  await registerFrontDoor(app, settings, metrics);
  const state = { ready: false, draining: false };
  const workerCache = new Map<number, CacheSnapshot>();
  const workerTensors = new Map<number, number>();
  const pool = new EnginePool({
    modelDir: settings.modelDir,
    workers: settings.workers,
    cacheBytes: settings.cacheBytes,
    maxRows: settings.maxBatchSentences,
    pairs: cfg.pairs,
    subnetworkOf: (pair) => subnetworkKey(cfg, pair),
    warmPairs: warmPairs(settings.warm, cfg),
    log,
    onCacheEvent: (e) => {
      if (e.event === 'hit') metrics.cacheHits.inc();
      else if (e.event === 'miss') metrics.cacheMisses.inc();
      else if (e.event === 'evict') metrics.cacheEvictions.inc();
      else if (e.event === 'load' && e.seconds !== undefined) metrics.subnetworkLoad.observe(e.seconds);
    },
    onStats: (worker, cache, tensors) => {
      workerCache.set(worker, cache);
      workerTensors.set(worker, tensors);
      metrics.cacheBytes.set(sum([...workerCache.values()].map((c) => c.bytes)));
      metrics.cacheEntries.set(sum([...workerCache.values()].map((c) => c.entries)));
      metrics.engineTensors.set(sum([...workerTensors.values()]));
    },
  });

  const pairOfQueue = (queue: string) => queue.split('|')[0];
  const batcher = new Batcher<Translation>({
    maxBatchSentences: settings.maxBatchSentences,
    maxBatchTokens: settings.maxBatchTokens,
    maxDelayMs: settings.maxDelayMs,
    maxQueuedSentences: settings.maxQueuedSentences,
    laneOf: (queue) => pool.laneOf(pairOfQueue(queue)),
    // A worker takes a lane's next batch while one decodes, and merges it in as rows finish.
    batchesPerLane: 2,
    run: async (queue, batch, signal) => {
      const work = batch.map((b) => b.payload as SentenceWork);
      const pair = pairOfQueue(queue);
      let result: BatchResult;
      try {
        result = await pool.run(pair, work.map((w) => w.ids), work[0].options, signal);
      } catch (err) {
        if (err instanceof BatchCancelledError) metrics.cancelledSentences.labels(pair).inc(work.length);
        throw err;
      }
      metrics.batchDuration.labels(pair).observe(result.durationMs / 1000);
      metrics.generatedTokens.labels(pair).inc(sum(result.translations.map((t) => t.generatedTokens)));
      metrics.sourceTokens.labels(pair).inc(sum(work.map((w) => w.ids.length)));
      return result.translations;
    },
    observer: {
      onQueueDepth: (queue, depth) => metrics.queueDepth.labels(pairOfQueue(queue)).set(depth),
      onBatch: (queue, b) => {
        const pair = pairOfQueue(queue);
        metrics.batchSentences.labels(pair).observe(b.sentences);
        metrics.batchTokens.labels(pair).observe(b.tokens);
        for (const w of b.waitsMs) metrics.queueWait.labels(pair).observe(w / 1000);
      },
      onRejected: (reason) => metrics.rejected.labels(reason).inc(),
    },
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.labels(route, String(reply.statusCode)).inc();
    metrics.requestDuration.labels(route).observe(reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    if (err instanceof HttpError) {
      if (err.reason !== undefined && err.reason !== 'queue_full' && err.reason !== 'deadline' && err.reason !== 'cancelled' && err.reason !== 'draining') {
        metrics.rejected.labels(err.reason).inc();
      }
      return reply.code(err.statusCode).headers(err.headers).send({ error: err.message });
    }
    if (err.validation !== undefined) {
      metrics.rejected.labels('invalid').inc();
      return reply.code(400).send({ error: `invalid request: ${err.message}` });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      metrics.rejected.labels('too_large').inc();
      return reply.code(413).send({ error: `request body is larger than the limit of ${settings.bodyLimitBytes} bytes` });
    }
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      metrics.rejected.labels('invalid').inc();
      return reply.code(err.statusCode).send({ error: err.message });
    }
    req.log.error(err);
    return reply.code(500).send({ error: `internal error: ${err.message}` });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url}` }));

  const languages = cfg.languages.map((code) => ({
    code,
    name: LANGUAGE_NAMES[code] ?? code,
    targets: cfg.pairs.filter((p) => p.startsWith(`${code}-`)).map((p) => parsePair(p).target),
  }));

  const translate = async (body: TranslateBody, req: FastifyRequest, reply: FastifyReply) => {
    if (state.draining) throw new HttpError(503, 'the server is shutting down; retry on another instance', 'draining');
    if (!state.ready) throw new HttpError(503, 'the server is warming up; retry shortly', 'not_ready');
    const dir = { source: body.source, target: body.target };
    try {
      checkDirection(cfg.languages, cfg.pairs, dir);
    } catch (err) {
      throw toHttpError(err);
    }
    const texts = Array.isArray(body.q) ? body.q : [body.q];
    const alternatives = body.alternatives ?? 0;
    const options: TranslateOptions = {
      beamSize: Math.max(body.beam_size ?? 1, alternatives + 1),
      nBest: alternatives + 1,
      maxLength: body.max_length,
    };
    const work = texts.map((text, i) => {
      const ids = tokenizer.encodeSource(text, dir.target);
      try {
        checkSourceLength(ids, cfg.maxLength, `q[${i}]`);
      } catch (err) {
        throw toHttpError(err);
      }
      return { tokens: ids.length, payload: { ids, options } satisfies SentenceWork };
    });
    // Requests with the same decoding options share a queue, so a batch has one set of options.
    const queue = options.beamSize === 1 && options.maxLength === undefined ? pairKey(dir.source, dir.target)
      : `${pairKey(dir.source, dir.target)}|beam=${options.beamSize}|n=${options.nBest}|max=${options.maxLength ?? ''}`;
    const disconnected = new AbortController();
    // The response stream closes before it finished only when the client went away.
    const onClose = () => {
      if (!reply.raw.writableFinished) disconnected.abort();
    };
    reply.raw.on('close', onClose);
    let results: Translation[];
    try {
      results = await batcher.submit(queue, work, { deadline: Date.now() + settings.timeoutMs, signal: disconnected.signal });
    } catch (err) {
      throw toHttpError(err);
    } finally {
      reply.raw.off('close', onClose);
    }
    const translatedText = results.map((r) => r.text);
    const response: { translatedText: string | string[]; alternatives?: string[] | string[][] } = {
      translatedText: Array.isArray(body.q) ? translatedText : translatedText[0],
    };
    if (alternatives > 0) response.alternatives = Array.isArray(body.q) ? results.map((r) => r.alternatives) : results[0].alternatives;
    return response;
  };

  const schema = translateSchema(settings, cfg.maxLength);
  app.post<{ Body: TranslateBody }>('/translate', { schema: { body: schema.body } }, (req, reply) => translate(req.body, req, reply));
  // The pair in the URL lets a load balancer hash on it, so each pair reaches the replicas that hold it warm.
  app.post<{ Body: Omit<TranslateBody, 'source' | 'target'> & Partial<TranslateBody>; Params: { source: string; target: string } }>(
    '/translate/:source/:target',
    { schema: { body: { ...schema.body, required: ['q'] }, params: schema.params } },
    (req, reply) => {
      const { source, target } = req.params;
      if ((req.body.source ?? source) !== source || (req.body.target ?? target) !== target) {
        throw new HttpError(400, `the body's source/target (${req.body.source}-${req.body.target}) disagree with the URL (${source}-${target})`, 'invalid');
      }
      return translate({ ...req.body, source, target } as TranslateBody, req, reply);
    },
  );
  app.get('/languages', async () => languages);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (state.draining) return reply.code(503).send({ status: 'draining' });
    if (!state.ready) return reply.code(503).send({ status: 'warming up' });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/info', async () => ({
    model: settings.modelDir,
    routing: cfg.routing,
    moe: cfg.moe,
    ...(cfg.extracted ? { extracted: cfg.extracted } : {}),
    languages: cfg.languages,
    pairs: cfg.pairs,
    workers: pool.size,
    workerRestarts: pool.restarts,
    batching: { maxBatchSentences: settings.maxBatchSentences, maxBatchTokens: settings.maxBatchTokens, maxDelayMs: settings.maxDelayMs },
    cache: {
      budgetBytesPerWorker: settings.cacheBytes,
      entries: sum([...workerCache.values()].map((c) => c.entries)),
      bytes: sum([...workerCache.values()].map((c) => c.bytes)),
      hits: sum([...workerCache.values()].map((c) => c.hits)),
      misses: sum([...workerCache.values()].map((c) => c.misses)),
      evictions: sum([...workerCache.values()].map((c) => c.evictions)),
    },
  }));

  await app.ready();
  const ready = pool.ready.then(() => {
    state.ready = true;
  });

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () => (shuttingDown ??= (async () => {
    state.draining = true;
    batcher.close();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, settings.drainGraceMs).unref());
    await Promise.race([batcher.drain(), grace]);
    await app.close();
    await pool.close();
  })());
  return { app, metrics, pool, ready, shutdown };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** The key of the sub-network a pair needs: pairs with equal keys share cached components. */
function subnetworkKey(cfg: ModelConfig, pair: string): string {
  const tasks = subnetworkTasks(cfg, parsePair(pair));
  return `${tasks.encoder ?? '*'}|${tasks.decoder ?? '*'}`;
}

function warmPairs(warm: string, cfg: ModelConfig): string[] {
  if (warm === 'all') return cfg.pairs;
  if (warm === 'none') return [];
  const pairs = warm.split(',').map((p) => p.trim()).filter(Boolean);
  const unknown = pairs.filter((p) => !cfg.pairs.includes(p));
  if (unknown.length > 0) throw new Error(`--warm / TASKMOE_WARM names pairs the model does not serve: ${unknown.join(', ')}`);
  return pairs;
}

function toHttpError(err: unknown): Error {
  if (err instanceof QueueFullError) {
    return new HttpError(429, `too many queued requests for ${err.pair}; retry after ${err.retryAfterSeconds} s`, 'queue_full', { 'retry-after': String(err.retryAfterSeconds) });
  }
  if (err instanceof DeadlineError) return new HttpError(504, `the translation did not finish within the request deadline`, 'deadline');
  if (err instanceof DrainingError) return new HttpError(503, 'the server is shutting down; retry on another instance', 'draining');
  // The client is gone; the status is for the logs only.
  if (err instanceof CancelledError) return new HttpError(499, 'the client closed the request', 'cancelled');
  if (err instanceof InputError || err instanceof EngineInputError) return new HttpError(400, err.message, 'invalid');
  if (err instanceof EngineError) return new HttpError(503, `the translation engine failed: ${err.message}`, 'engine_error', { 'retry-after': '1' });
  return err as Error;
}
