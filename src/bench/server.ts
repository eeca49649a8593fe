// `taskmoe bench server`: loads a real listening server (a child process) with a bounded
// closed-loop HTTP client and compares, side by side in one run:
//   1. batching on against a maximum batch of 1, one pair, at saturation;
//   2. one pair against requests spread over every pair with a cache budget below their total;
//   3. the server at saturation against the engine alone (in a fresh worker thread, batches of the
//      server's maximum size joining the running one as in a server's lane), on the same sentences;
//   4. one pair at saturation on one engine worker against N workers (server-workers.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCorpus, pairsFor } from '../data/corpus.ts';
import { CheckpointReader } from '../models/checkpoint.ts';
import { parsePair } from '../models/config.ts';
import { inspectModel } from '../models/inspect.ts';
import { SubnetworkCache } from '../models/subnetwork-cache.ts';
import { DEFAULT_MODEL_DIR } from '../translator/index.ts';
import { startWorker } from '../util/worker-thread.ts';
import type { EngineAloneJob, EngineAloneResult } from './engine-alone-worker.ts';
import { ensureBackend } from './backend.ts';
import { closedLoop, parseMetrics, sumMetric } from './load.ts';
import { type Roofline, formatRoofline, roofline } from './roofline.ts';
import { startServerProcess } from './server-process.ts';
import { median, percentile } from './stats.ts';
import { formatRow, formatSummary } from './server-report.ts';
import { compareSettings, formatSettings } from './server-settings.ts';
import { type WorkersComparison, compareWorkers, formatWorkers, saturationRound } from './server-workers.ts';

export interface ServerBenchOptions {
  /** Checkpoint to serve (default: the demo model). */
  model?: string;
  /** Corpus directory whose en-XX.tsv files give the texts (default: ../shared/data/gettext-mt/dev). */
  data?: string;
  /** Measured seconds per run, after the warm-up. */
  seconds?: number;
  /** Rounds of all cases, interleaved; each case reports its median round. */
  rounds?: number;
  warmupSeconds?: number;
  /** Requests in flight (per engine worker in the workers comparison). */
  concurrency?: number;
  /** N of the one-pair comparison of 1 and N workers (default: one per core). */
  workers?: number;
  /** Run only the comparison of 1 and N workers. */
  workersOnly?: boolean;
  /** Run only a comparison of these `taskmoe serve` flag sets on one pair (server-settings.ts), and of 1 and N workers. */
  settings?: string[];
  json?: string;
  log?: (line: string) => void;
}

/** One load run against one server configuration; in the summary, the median round of its case. */
export interface LoadResult {
  label: string;
  /** Sentences/s of every round of this case (set on the median round the summary reports). */
  rounds?: number[];
  requests: number;
  /** Answered 200 per second over the measured window (one text per request). */
  sentencesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-200 answers in the window, by status. */
  errors: Record<string, number>;
  meanBatchSentences: number;
  cache?: { hits: number; misses: number; evictions: number; hitRatio: number };
  /** Workers the measured pair's sub-network was resident on at the end. */
  replicas?: number;
}

export interface ServerBenchResult {
  model: string;
  concurrency: number;
  seconds: number;
  rounds: number;
  batching: { on: LoadResult; off: LoadResult; speedup: number };
  pairs: { one: LoadResult; spread: LoadResult; cacheMiB: number; subnetworksMiB: number; ratio: number };
  overhead: {
    server: LoadResult;
    engineSentencesPerSecond: number;
    engineRounds: number[];
    engineBatch: number;
    overhead: number;
  };
  workers: WorkersComparison;
  roofline: Roofline;
}

export interface Job {
  source: string;
  target: string;
  text: string;
}

const MiB = 1024 * 1024;
/** The server's default maximum batch, set explicitly so the cases compare what they say. */
const MAX_BATCH = 32;

/** The run of the median throughput, carrying every round's throughput. */
export function medianRun(runs: LoadResult[]): LoadResult {
  const sorted = [...runs].sort((a, b) => a.sentencesPerSecond - b.sentencesPerSecond);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)], rounds: runs.map((r) => r.sentencesPerSecond) };
}

export type WorkersBenchResult = Pick<ServerBenchResult, 'model' | 'concurrency' | 'seconds' | 'rounds' | 'workers'>;

export async function benchServer(opts: ServerBenchOptions = {}): Promise<ServerBenchResult | WorkersBenchResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const model = path.resolve(opts.model ?? DEFAULT_MODEL_DIR);
  const dataDir = path.resolve(opts.data ?? path.join('..', 'shared', 'data', 'gettext-mt', 'dev'));
  if (!fs.existsSync(dataDir))
    throw new Error(`bench server: no corpus at ${dataDir}; give one with --data DIR (en-XX.tsv files)`);
  const seconds = opts.seconds ?? 10;
  const warmupSeconds = opts.warmupSeconds ?? 3;
  const rounds = opts.rounds ?? 3;
  const concurrency = opts.concurrency ?? 64;
  const reader = await CheckpointReader.open(model);
  const cfg = reader.config;
  const corpus = await readCorpus(dataDir, { languages: cfg.languages, maxPerFile: 400 });
  const jobsOf = (pair: string): Job[] => {
    const dir = parsePair(pair);
    return pairsFor(corpus.files, dir).map((p) => ({ ...dir, text: p.source }));
  };
  const onePair = cfg.pairs.includes('en-de') ? 'en-de' : cfg.pairs[0];
  const oneJobs = jobsOf(onePair);
  if (oneJobs.length === 0) throw new Error(`bench server: ${dataDir} has no ${onePair} sentences`);
  // Interleaved so that consecutive requests go to different pairs.
  const perPair = cfg.pairs.map(jobsOf).filter((j) => j.length > 0);
  const spreadJobs: Job[] = [];
  for (let i = 0; i < Math.max(...perPair.map((j) => j.length)); i++)
    for (const j of perPair) if (i < j.length) spreadJobs.push(j[i]);

  const backend = await ensureBackend(() => {});
  log(
    `bench server: ${model}, ${cfg.pairs.length} pairs, ${concurrency} requests in flight, ${warmupSeconds} s warm-up + ${seconds} s per run, ${rounds} rounds, backend ${backend.description}`,
  );
  const run = (label: string, jobs: Job[], args: string[]) =>
    loadServer({
      label,
      model,
      jobs,
      args,
      seconds,
      warmupSeconds,
      concurrency,
      pair: jobs === oneJobs ? onePair : undefined,
    });
  const n = opts.workers ?? os.availableParallelism();
  const saturation = { model, jobs: oneJobs, pair: onePair, seconds, warmupSeconds, concurrency };
  if (opts.settings !== undefined) {
    const result = await compareSettings({ ...saturation, rounds, workers: n, cases: opts.settings }, log);
    log('');
    log(formatSettings(result, concurrency));
    if (opts.json !== undefined) fs.writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
    return { model, concurrency, seconds, rounds, workers: result.workers };
  }
  if (opts.workersOnly) {
    const single: LoadResult[] = [];
    const many: LoadResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      log(`round ${round}/${rounds}`);
      const r = await saturationRound(saturation, n, log);
      single.push(r.single);
      many.push(r.many);
    }
    const result: WorkersBenchResult = {
      model,
      concurrency,
      seconds,
      rounds,
      workers: compareWorkers(single, many, n),
    };
    log('');
    log(formatWorkers(result.workers));
    if (opts.json !== undefined) fs.writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
    return result;
  }

  // Per worker: the shared parts plus about one and a half task sub-networks, below what its pairs need.
  const sizes = await subnetworkBytes(reader, onePair);
  const cacheMiB = Math.ceil((sizes.shared + 1.5 * sizes.task) / MiB);
  const subnetworksMiB = (sizes.shared + sizes.tasks * sizes.task) / MiB;
  const cacheArgs = ['--cache-mb', String(cacheMiB)];
  const bound = await roofline(
    model,
    onePair,
    oneJobs.map((j) => j.text),
    MAX_BATCH,
  );
  log(formatRoofline(bound));

  // Rounds interleave the cases, so that a slow spell of the machine does not land on one case alone;
  // each case reports its median round.
  const runs = {
    on: [] as LoadResult[],
    off: [] as LoadResult[],
    one: [] as LoadResult[],
    spread: [] as LoadResult[],
    engine: [] as number[],
    single: [] as LoadResult[],
    many: [] as LoadResult[],
  };
  for (let round = 1; round <= rounds; round++) {
    log(`round ${round}/${rounds}`);
    const record = (list: LoadResult[], r: LoadResult) => {
      list.push(r);
      log(formatRow(r));
    };
    record(runs.on, await run(`batching on (max ${MAX_BATCH})`, oneJobs, ['--max-batch-sentences', String(MAX_BATCH)]));
    record(runs.off, await run('max batch 1', oneJobs, ['--max-batch-sentences', '1']));
    record(runs.one, await run(`one pair, cache ${cacheMiB} MiB/worker`, oneJobs, cacheArgs));
    record(runs.spread, await run(`${perPair.length} pairs, cache ${cacheMiB} MiB/worker`, spreadJobs, cacheArgs));
    runs.engine.push(await engineThroughput(model, onePair, oneJobs, MAX_BATCH, seconds));
    log(`engine alone, ${onePair}, batches of ${MAX_BATCH}: ${runs.engine.at(-1)!.toFixed(1)} sentences/s`);
    const workers = await saturationRound(saturation, n, log);
    runs.single.push(workers.single);
    runs.many.push(workers.many);
  }
  const [on, off, one, spread] = [runs.on, runs.off, runs.one, runs.spread].map(medianRun);
  const engineSentencesPerSecond = median(runs.engine);

  const result: ServerBenchResult = {
    model,
    concurrency,
    seconds,
    rounds,
    batching: { on, off, speedup: on.sentencesPerSecond / off.sentencesPerSecond },
    pairs: { one, spread, cacheMiB, subnetworksMiB, ratio: spread.sentencesPerSecond / one.sentencesPerSecond },
    overhead: {
      server: on,
      engineSentencesPerSecond,
      engineRounds: runs.engine,
      engineBatch: MAX_BATCH,
      overhead: 1 - on.sentencesPerSecond / engineSentencesPerSecond,
    },
    workers: compareWorkers(runs.single, runs.many, n),
    roofline: bound,
  };
  log('');
  log(formatSummary(result));
  if (opts.json !== undefined) fs.writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
  return result;
}

/**
 * Device bytes of the cache entries every pair shares (embeddings, a token-routed encoder), of one
 * task's entries, and the number of tasks: measured by loading one pair's sub-network here.
 */
async function subnetworkBytes(
  reader: CheckpointReader,
  pair: string,
): Promise<{ shared: number; task: number; tasks: number }> {
  const bytes = { shared: 0, task: 0 };
  const cache = new SubnetworkCache(reader, {
    budgetBytes: Number.MAX_SAFE_INTEGER,
    onEvent: (e) => {
      if (e.type === 'load') bytes[e.key === 'embeddings' || e.key.endsWith(':*') ? 'shared' : 'task'] += e.bytes;
    },
  });
  try {
    (await cache.acquire(parsePair(pair))).release();
  } finally {
    cache.dispose();
  }
  return { ...bytes, tasks: inspectModel(reader).subnetworks.length };
}

export interface LoadSpec {
  label: string;
  model: string;
  jobs: Job[];
  args: string[];
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
  /** The pair whose batch sizes to report; all pairs when undefined. */
  pair?: string;
}

/**
 * Closed loop: `concurrency` clients each send one text, wait for the answer, and send the next.
 * The window opens once the warm-up time has passed and the first `concurrency` answers are in
 * (the start-up burst is through, whatever the latency), and it counts the answers that arrive
 * inside it. Counting only requests both sent and answered inside the window would undercount
 * whenever the latency is a sizeable part of the window.
 */
export async function loadServer(spec: LoadSpec): Promise<LoadResult> {
  // --warm none: ready at once; the sub-networks load during the run's own warm-up.
  const server = await startServerProcess({ model: spec.model, args: ['--warm', 'none', ...spec.args] });
  try {
    const warmupUntil = performance.now() + spec.warmupSeconds * 1000;
    let measureFrom = Infinity;
    let end = Infinity;
    let answered = 0;
    const latencies: number[] = [];
    const errors: Record<string, number> = {};
    await closedLoop({
      concurrency: spec.concurrency,
      request: (i) => {
        const job = spec.jobs[i % spec.jobs.length];
        return { url: `${server.url}/translate`, body: { q: job.text, source: job.source, target: job.target } };
      },
      stop: () => performance.now() >= end,
      timeoutMs: 600_000,
      onAnswer: ({ status, sentMs, doneMs }) => {
        answered++;
        if (measureFrom === Infinity && answered >= spec.concurrency && doneMs >= warmupUntil) {
          measureFrom = doneMs;
          end = measureFrom + spec.seconds * 1000;
          return;
        }
        if (doneMs <= measureFrom || doneMs > end) return;
        if (status === 200) latencies.push(doneMs - sentMs);
        else errors[status] = (errors[status] ?? 0) + 1;
      },
    });
    const metrics = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
    const info = (await (await fetch(`${server.url}/info`)).json()) as {
      cache: { hits: number; misses: number; evictions: number };
      replicas: Record<string, number[]>;
    };
    const { hits, misses, evictions } = info.cache;
    const labels: Record<string, string> = spec.pair === undefined ? {} : { pair: spec.pair };
    const batchSum = sumMetric(metrics, 'taskmoe_batch_sentences_sum', labels);
    const batchCount = sumMetric(metrics, 'taskmoe_batch_sentences_count', labels);
    return {
      label: spec.label,
      requests: latencies.length,
      sentencesPerSecond: latencies.length / spec.seconds,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      errors,
      meanBatchSentences: batchCount > 0 ? batchSum / batchCount : 0,
      cache: { hits, misses, evictions, hitRatio: hits / Math.max(1, hits + misses) },
      ...(spec.pair === undefined ? {} : { replicas: info.replicas[spec.pair]?.length }),
    };
  } finally {
    await server.stop(60_000);
  }
}

/** Sentences/s of the engine alone on consecutive batches of the same texts, in a fresh worker thread (engine-alone-worker.ts). */
async function engineThroughput(
  model: string,
  pair: string,
  jobs: Job[],
  batch: number,
  seconds: number,
): Promise<number> {
  const job: EngineAloneJob = { model, pair, texts: jobs.map((j) => j.text), batch, seconds };
  const worker = startWorker(import.meta.url, 'engine-alone-worker', job);
  try {
    const result = await new Promise<EngineAloneResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) =>
        reject(new Error(`bench server: the engine-alone worker exited (${code}) without a result`)),
      );
    });
    if ('error' in result) throw new Error(`bench server: engine alone failed: ${result.error}`);
    return result.sentencesPerSecond;
  } finally {
    await worker.terminate();
  }
}
