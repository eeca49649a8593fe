// The HTTP layer. A request's path: schema validation and tokenization here, then the batcher's
// queue for its pair, a batch, an engine worker, and back. Nothing here touches tensors.
import * as path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Batcher, DrainingError } from '../batching/index.ts';
import { verifyCheckpoint } from '../models/verify.ts';
import type { Translation } from '../translator/index.ts';
import { ServedModel } from '../translator/served-model.ts';
import { loadProfile } from '../text/detect.ts';
import { EnginePool } from './engine-pool.ts';
import type { BatchResult } from './engine-worker-client.ts';
import type { CacheSnapshot } from './engine-protocol.ts';
import { ClientShares, CostLimitError, requestCost } from './cost.ts';
import { BatchCancelledError, NotReadyError, ShuttingDownError, answerFor } from './errors.ts';
import { capConnections, httpLimitOptions } from './http-limits.ts';
import { addMetricsRoute, createMetricsApp } from './metrics-access.ts';
import { LANGUAGE_NAMES } from './languages.ts';
import { ServerMetrics } from './metrics.ts';
import { type BatchKey, type SourceText, type TranslationRequest, sentenceRequest } from './request.ts';
import { libreTranslate } from './libretranslate.ts';
import { type SubmitSentences, TextService } from './text-service.ts';
import type { ServerSettings } from './settings.ts';
import { registerFrontDoor } from './front-door/index.ts';

export interface TaskmoeServer {
  app: FastifyInstance;
  /** /metrics alone, with --metrics-port (the caller listens on it). */
  metricsApp?: FastifyInstance;
  metrics: ServerMetrics;
  pool: EnginePool;
  /** Resolves when the engine workers have warmed up and /readyz turns 200 (a worker that cannot start is retried meanwhile; /readyz says why). */
  ready: Promise<void>;
  /**
   * Stops readiness, finishes queued and running work within the grace period, answers what is
   * left 503 (Retry-After, Connection: close), closes everything.
   */
  shutdown(): Promise<void>;
}

/**
 * The grace is the whole budget from SIGTERM to exit (a Kubernetes pod's grace period): its last
 * half, up to 2 s, is kept for closing. Tearing down the engine workers' V8 heaps and then the
 * process's memory takes 0.3-0.8 s each on a 2-core VM, more under load (unmapping pages), and cannot be cut short.
 */
export function workGraceMs(drainGraceMs: number): number {
  return drainGraceMs - Math.min(2000, Math.floor(drainGraceMs / 2));
}

/** At the end of the drain, the most time given to the last answers to reach their clients before connections close. */
const DRAIN_ANSWER_MS = 250;

/** Builds the app and starts its engine workers, which warm up in the background (see `ready`). */
export async function createServer(
  settings: ServerSettings,
  log: (msg: string) => void = () => {},
): Promise<TaskmoeServer> {
  // One checkpoint, or a directory of them (imported per-pair models) served as one. A corrupt or
  // mismatched checkpoint stops the server here, before it listens: never ready, never serving empty text.
  const served = await ServedModel.open(settings.modelDir);
  for (const m of served.set.members) await verifyCheckpoint(m.reader, log);
  const cfg = served.set.first.config;
  const metrics = new ServerMetrics();
  const app = Fastify({
    bodyLimit: settings.bodyLimitBytes,
    // Strict validation: unknown fields and wrong types are 400s, not silently dropped or coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    ...httpLimitOptions(settings),
  });
  capConnections(app.server, settings.maxConnections);
  const shares = new ClientShares(settings.maxClientCost);
  // Before any route: the OpenAPI generator and the key/quota guard must see every route.
  await registerFrontDoor(app, settings);
  const state = { ready: false, draining: false };
  const workerCache = new Map<number, CacheSnapshot>();
  const workerTensors = new Map<number, number>();
  const pool = new EnginePool({
    modelDir: settings.modelDir,
    workers: settings.workers,
    cacheBytes: settings.cacheBytes,
    maxRows: settings.maxBatchSentences,
    pairs: served.pairs,
    subnetworkOf: (pair) => served.subnetwork(pair),
    warmPairs: warmPairs(settings.warm, served.pairs),
    intraOpThreads: settings.intraOpThreads,
    replicas: {
      busyRatio: settings.replicaBusyPercent / 100,
      waitMs: settings.replicaWaitMs,
      maxReplicas: settings.maxReplicas,
      maxCpuPressure: settings.replicaMaxCpuPressurePercent / 100,
      windowMs: settings.replicaWindowMs,
    },
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
    rowsPerSentence: (key) => key.options.beamSize ?? 1,
    run: async (key, texts, signal, worker) => {
      let result: BatchResult;
      try {
        result = await pool.run(
          key,
          texts.map((t) => t.ids),
          signal,
          worker,
        );
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

  // Requests not yet answered, so that the drain closes connections as soon as their answers are out.
  let inFlight = 0;
  let answered: (() => void) | undefined;
  app.addHook('onRequest', async () => {
    inFlight++;
  });
  app.addHook('onResponse', async () => {
    if (--inFlight === 0) answered?.();
  });
  const allAnswered = (ms: number) =>
    new Promise<void>((resolve) => {
      if (inFlight === 0) return resolve();
      answered = resolve;
      setTimeout(resolve, ms).unref();
    });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.labels(route, String(reply.statusCode)).inc();
    metrics.requestDuration.labels(route).observe(reply.elapsedTime / 1000);
  });

  // The one place a failed request is answered and its rejection counted.
  app.setErrorHandler((err: Error, req, reply) => {
    const answer = answerFor(err, settings);
    if (answer.reason !== undefined) metrics.rejected.labels(answer.reason).inc();
    else req.log.error(err);
    return reply
      .code(answer.status)
      .headers(answer.headers ?? {})
      .send({ error: answer.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url}` }));

  // Sentences of one direction through the batcher, as one typed request (server/request.ts). Each
  // submission is charged its cost: over --max-request-cost it is refused, and one client's share of
  // a worker is bounded while it waits and runs.
  const submit: SubmitSentences = async (direction, ids, options, ctx) => {
    // Checked against the config of the member serving the direction.
    const memberCfg = served.configFor(direction);
    const request: TranslationRequest = sentenceRequest(memberCfg, direction, ids, options, ctx);
    const { beamSize = 1, maxLength } = request.key.options;
    const cost = requestCost(
      request.texts.map((t) => t.ids.length),
      beamSize,
      maxLength,
      memberCfg.maxLength,
    );
    if (cost > settings.maxRequestCost) throw new CostLimitError(cost, settings.maxRequestCost);
    // The share is kept against the pair's home worker even when a replica runs the batch: the
    // batcher picks the lane only at dispatch, and the home is the one worker that always holds the pair.
    const release = shares.reserve(ctx.client, String(pool.homeOf(request.key.pair)), cost);
    try {
      return await batcher.submit(request.key, request.texts, request);
    } finally {
      release();
    }
  };
  const service = new TextService(served, loadProfile(settings.modelDir), submit);
  await app.register(libreTranslate, {
    settings,
    maxLength: served.maxLength,
    service,
    languageNames: LANGUAGE_NAMES,
    admit: () => {
      if (state.draining) throw new ShuttingDownError();
      if (!state.ready) throw new NotReadyError();
    },
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Ready only while every engine worker can serve; otherwise 503 with the reason.
  app.get('/readyz', async (_req, reply) => {
    const unready = (status: string, reason?: string) =>
      reply
        .code(503)
        .header('retry-after', '1')
        .send({ status, ...(reason ? { reason } : {}), workers: pool.health() });
    if (state.draining) return unready('draining');
    if (!state.ready) return unready('warming up');
    const down = pool.health().filter((w) => w.status !== 'ready');
    if (down.length > 0)
      return unready('degraded', down.map((w) => w.reason ?? `engine worker ${w.worker} is ${w.status}`).join('; '));
    return { status: 'ready' };
  });
  const metricsApp = settings.metricsPort === '' ? undefined : createMetricsApp(metrics, settings.metricsToken);
  if (metricsApp === undefined) addMetricsRoute(app, metrics, settings.metricsToken);
  app.get('/info', async () => ({
    // The model's name, never its filesystem path.
    model: path.basename(path.resolve(settings.modelDir)),
    engine: { backend: pool.health().find((w) => w.backend !== undefined)?.backend },
    routing: cfg.routing,
    moe: cfg.moe,
    ...(cfg.extracted ? { extracted: cfg.extracted } : {}),
    languages: served.languages,
    pairs: served.pairs,
    ...(served.set.members.length > 1
      ? { members: served.set.members.map((m) => ({ name: m.name, pairs: m.reader.config.pairs })) }
      : {}),
    pivot: { via: 'en', pairs: service.pivotPairs() },
    workers: pool.size,
    workerRestarts: pool.restarts,
    workerBusy: pool.busy(),
    replicas: Object.fromEntries(cfg.pairs.map((p) => [p, pool.workersOf(p)])),
    batching: {
      maxBatchSentences: settings.maxBatchSentences,
      maxBatchTokens: settings.maxBatchTokens,
      maxDelayMs: settings.maxDelayMs,
    },
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
  await metricsApp?.ready();
  const ready = pool.ready.then(() => {
    state.ready = true;
  });

  let shuttingDown: Promise<void> | undefined;
  const shutdown = () =>
    (shuttingDown ??= (async () => {
      state.draining = true;
      pool.stopRebalancing();
      batcher.close();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'grace'>(
        (resolve) => (timer = setTimeout(() => resolve('grace'), workGraceMs(settings.drainGraceMs))),
      );
      const outcome = await Promise.race([batcher.drain().then(() => 'drained' as const), grace]);
      clearTimeout(timer);
      // Out of time: what is queued or running is answered 503 now. Either way the engine workers
      // have nothing left to do: they stop while the answers reach their clients.
      if (outcome === 'grace') batcher.abort(new DrainingError('all'));
      const workersClosed = pool.close();
      await allAnswered(DRAIN_ANSWER_MS);
      log(`taskmoe: drain ${outcome === 'grace' ? 'ran out of grace, unfinished work answered 503' : 'done'}`);
      await Promise.all([app.close(), metricsApp?.close()]);
      await workersClosed;
    })());
  return { app, metricsApp, metrics, pool, ready, shutdown };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function warmPairs(warm: string, served: string[]): string[] {
  if (warm === 'all') return served;
  if (warm === 'none') return [];
  const pairs = warm
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const unknown = pairs.filter((p) => !served.includes(p));
  if (unknown.length > 0)
    throw new Error(`--warm / TASKMOE_WARM names pairs the model does not serve: ${unknown.join(', ')}`);
  return pairs;
}
