// The HTTP layer. A request's path: schema validation and tokenization here, then the batcher's
// queue for its pair, a batch, an engine worker, and back. Nothing here touches tensors.
import Fastify, { type FastifyInstance } from 'fastify';
import { Batcher, CancelledError, DeadlineError, DrainingError, QueueFullError } from '../batching/index.ts';
import { CheckpointReader } from '../models/checkpoint.ts';
import { type ModelConfig, pairKey, parsePair } from '../models/config.ts';
import { subnetworkTasks } from '../models/extract.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { InputError, type TranslateOptions, type Translation, checkDirection, checkSourceLength } from '../translator/index.ts';
import { loadProfile } from '../text/detect.ts';
import { libreTranslate } from './libretranslate.ts';
import { type SubmitSentences, TextService } from './text-service.ts';
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

/** One sentence of a request, as it travels through the batcher to a worker. */
interface SentenceWork {
  ids: number[];
  options: TranslateOptions;
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

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    const err = toHttpError(error) as typeof error;
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

  const submit: SubmitSentences = async (dir, ids, options, ctx) => {
    try {
      checkDirection(cfg.languages, cfg.pairs, dir);
      ids.forEach((s, i) => checkSourceLength(s, cfg.maxLength, `sentence ${i}`));
    } catch (err) {
      throw toHttpError(err);
    }
    // Requests with the same decoding options share a queue, so a batch has one set of options.
    const queue = (options.beamSize ?? 1) === 1 && options.maxLength === undefined ? pairKey(dir.source, dir.target)
      : `${pairKey(dir.source, dir.target)}|beam=${options.beamSize}|n=${options.nBest}|max=${options.maxLength ?? ''}`;
    const work = ids.map((s) => ({ tokens: s.length, payload: { ids: s, options } satisfies SentenceWork }));
    try {
      return await batcher.submit(queue, work, ctx);
    } catch (err) {
      throw toHttpError(err);
    }
  };
  const service = new TextService(cfg, tokenizer, loadProfile(settings.modelDir), submit);
  await app.register(libreTranslate, {
    settings,
    maxLength: cfg.maxLength,
    service,
    languageNames: LANGUAGE_NAMES,
    admit: () => {
      if (state.draining) throw new HttpError(503, 'the server is shutting down; retry on another instance', 'draining');
      if (!state.ready) throw new HttpError(503, 'the server is warming up; retry shortly', 'not_ready');
    },
  });
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
    pivot: { via: 'en', pairs: service.pivotPairs() },
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
