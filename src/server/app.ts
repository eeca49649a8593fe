// The HTTP layer. A request's path: schema validation and tokenization here, then the batcher's
// queue for its pair, a batch, an engine worker, and back. Nothing here touches tensors.
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { Batcher } from '../batching/index.ts';
import { CheckpointReader } from '../models/checkpoint.ts';
import { type ModelConfig, parsePair } from '../models/config.ts';
import { subnetworkOf } from '../models/subnetwork.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { InputError, type Translation } from '../translator/index.ts';
import { EnginePool } from './engine-pool.ts';
import type { BatchResult } from './engine-worker-client.ts';
import type { CacheSnapshot } from './engine-protocol.ts';
import { BatchCancelledError, NotReadyError, ShuttingDownError, answerFor } from './errors.ts';
import { LANGUAGE_NAMES } from './languages.ts';
import { ServerMetrics } from './metrics.ts';
import { type BatchKey, type SourceText, type TranslateBody, type TranslationRequest, responseOf, translateSchema, validateRequest } from './request.ts';
import type { ServerSettings } from './settings.ts';

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
  const state = { ready: false, draining: false };
  const workerCache = new Map<number, CacheSnapshot>();
  const workerTensors = new Map<number, number>();
  const pool = new EnginePool({
    modelDir: settings.modelDir,
    workers: settings.workers,
    cacheBytes: settings.cacheBytes,
    maxRows: settings.maxBatchSentences,
    pairs: cfg.pairs,
    subnetworkOf: (pair) => subnetworkOf(cfg, parsePair(pair)),
    warmPairs: warmPairs(settings.warm, cfg),
    intraOpThreads: settings.intraOpThreads,
    replicas: { busyRatio: settings.replicaBusyPercent / 100, waitMs: settings.replicaWaitMs, maxReplicas: settings.maxReplicas, windowMs: settings.replicaWindowMs },
    onReplicas: (subnetwork, n) => metrics.subnetworkReplicas.labels(subnetwork).set(n),
    onWorkerBusy: (worker, ratio) => metrics.workerBusy.labels(String(worker)).set(ratio),
    onLanesChanged: () => batcher.lanesChanged(),
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

  const batcher = new Batcher<BatchKey, SourceText, Translation>({
    maxBatchSentences: settings.maxBatchSentences,
    maxBatchTokens: settings.maxBatchTokens,
    maxDelayMs: settings.maxDelayMs,
    maxQueuedSentences: settings.maxQueuedSentences,
    ...pool.lanes,
    run: async (key, texts, signal, worker) => {
      let result: BatchResult;
      try {
        result = await pool.run(key, texts.map((t) => t.ids), signal, worker);
      } catch (err) {
        if (err instanceof BatchCancelledError) metrics.cancelledSentences.labels(key.pair).inc(texts.length);
        throw err;
      }
      metrics.batchDuration.labels(key.pair).observe(result.durationMs / 1000);
      metrics.generatedTokens.labels(key.pair).inc(sum(result.translations.map((t) => t.generatedTokens)));
      metrics.sourceTokens.labels(key.pair).inc(sum(texts.map((t) => t.tokens)));
      return result.translations;
    },
    // Rejections are counted by the error handler, with every other error (errors.ts).
    observer: {
      onQueueDepth: (pair, depth) => metrics.queueDepth.labels(pair).set(depth),
      onBatch: ({ pair }, b) => {
        metrics.batchSentences.labels(pair).observe(b.sentences);
        metrics.batchTokens.labels(pair).observe(b.tokens);
        for (const w of b.waitsMs) metrics.queueWait.labels(pair).observe(w / 1000);
        pool.observeWaits(pair, b.waitsMs);
      },
    },
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.labels(route, String(reply.statusCode)).inc();
    metrics.requestDuration.labels(route).observe(reply.elapsedTime / 1000);
  });

  // The one place a failed request is answered and its rejection counted.
  app.setErrorHandler((err: Error, req, reply) => {
    const answer = answerFor(err, settings.bodyLimitBytes);
    if (answer.reason !== undefined) metrics.rejected.labels(answer.reason).inc();
    else req.log.error(err);
    return reply.code(answer.status).headers(answer.headers ?? {}).send({ error: answer.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url}` }));

  const languages = cfg.languages.map((code) => ({
    code,
    name: LANGUAGE_NAMES[code] ?? code,
    targets: cfg.pairs.filter((p) => p.startsWith(`${code}-`)).map((p) => parsePair(p).target),
  }));

  const translate = async (body: TranslateBody, reply: FastifyReply) => {
    if (state.draining) throw new ShuttingDownError();
    if (!state.ready) throw new NotReadyError();
    const disconnected = new AbortController();
    // The response stream closes before it finished only when the client went away.
    const onClose = () => {
      if (!reply.raw.writableFinished) disconnected.abort();
    };
    reply.raw.on('close', onClose);
    try {
      const request: TranslationRequest = validateRequest(body, { cfg, tokenizer }, { timeoutMs: settings.timeoutMs, signal: disconnected.signal });
      return responseOf(request, await batcher.submit(request.key, request.texts, request));
    } finally {
      reply.raw.off('close', onClose);
    }
  };

  const schema = translateSchema(settings, cfg.maxLength);
  app.post<{ Body: TranslateBody }>('/translate', { schema: { body: schema.body } }, (req, reply) => translate(req.body, reply));
  // The pair in the URL lets a load balancer hash on it, so each pair reaches the replicas that hold it warm.
  app.post<{ Body: Omit<TranslateBody, 'source' | 'target'> & Partial<TranslateBody>; Params: { source: string; target: string } }>(
    '/translate/:source/:target',
    { schema: { body: { ...schema.body, required: ['q'] }, params: schema.params } },
    (req, reply) => {
      const { source, target } = req.params;
      if ((req.body.source ?? source) !== source || (req.body.target ?? target) !== target) {
        throw new InputError(`the body's source/target (${req.body.source}-${req.body.target}) disagree with the URL (${source}-${target})`);
      }
      return translate({ ...req.body, source, target } as TranslateBody, reply);
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
    workerBusy: pool.busy(),
    replicas: Object.fromEntries(cfg.pairs.map((p) => [p, pool.workersOf(p)])),
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

function warmPairs(warm: string, cfg: ModelConfig): string[] {
  if (warm === 'all') return cfg.pairs;
  if (warm === 'none') return [];
  const pairs = warm.split(',').map((p) => p.trim()).filter(Boolean);
  const unknown = pairs.filter((p) => !cfg.pairs.includes(p));
  if (unknown.length > 0) throw new Error(`--warm / TASKMOE_WARM names pairs the model does not serve: ${unknown.join(', ')}`);
  return pairs;
}
