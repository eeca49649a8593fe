// taskmoe for the checks and benchmarks: random checkpoints, servers started from source, and a
// bounded multi-pair load.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { closedLoop, parseMetrics, sumMetric } from '../../src/bench/load.ts';
import { mulberry32 } from '../../src/util/random.ts';
import { startServerProcess } from '../../src/bench/server-process.ts';
import { type Proc, track } from './proc.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'test/helpers/cli-entry.ts');
const TOKENIZER = path.join(ROOT, 'test/fixtures/spm/tiny.model');

/** Languages the fixture tokenizer has tags for. */
export const FIXTURE_LANGUAGES = ['en', 'de', 'fr', 'ru', 'ja', 'zh'];

export interface CheckpointConfig {
  dModel: number;
  dFF: number;
  layers: number;
  experts: number;
  routing: { encoder: string; decoder: string };
  languages: string[];
  pairs: string[];
  maxLength: number;
}

/** Writes a random checkpoint with `taskmoe init` (vocabulary: the 1000-piece test fixture). */
export function makeCheckpoint(dir: string, c: CheckpointConfig, seed = 1): string {
  const cfg = {
    vocabSize: 1000,
    dModel: c.dModel,
    numHeads: 4,
    dFF: c.dFF,
    encoderLayers: c.layers,
    decoderLayers: c.layers,
    moe: { numExperts: c.experts, topK: 2, every: 2 },
    routing: c.routing,
    languages: c.languages,
    pairs: c.pairs,
    maxLength: c.maxLength,
    tokenizer: 'tokenizer.model',
  };
  fs.mkdirSync(dir, { recursive: true });
  const cfgFile = path.join(dir, 'config.in.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const out = path.join(dir, 'model');
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'init',
      '--config',
      cfgFile,
      '--tokenizer',
      TOKENIZER,
      '--out',
      out,
      '--seed',
      String(seed),
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`taskmoe init failed: ${r.stderr}`);
  return out;
}

/** Every ordered pair of the languages. */
export function allPairs(languages: string[]): string[] {
  return languages.flatMap((s) => languages.filter((t) => t !== s).map((t) => `${s}-${t}`));
}

/** Starts `taskmoe serve` from source on 127.0.0.1:port (the one way, src/bench/server-process.ts) and waits for /readyz. */
export async function startTaskmoe(opts: {
  name: string;
  model: string;
  port: number;
  log: string;
  lifetimeS: number;
  workers?: number;
  cacheMb?: number;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}): Promise<Proc> {
  const args = ['--workers', String(opts.workers ?? 1)];
  if (opts.cacheMb !== undefined) args.push('--cache-mb', String(opts.cacheMb));
  const server = await startServerProcess({
    name: opts.name,
    model: opts.model,
    port: opts.port,
    args,
    cli: { execArgv: ['--import', 'tsx'], entry: CLI },
    log: opts.log,
    lifetimeS: opts.lifetimeS,
    cwd: ROOT,
    env: { ...process.env, TASKMOE_BACKEND: 'wasm', TASKMOE_DRAIN_GRACE_MS: '2000', ...opts.env },
    readyTimeoutMs: opts.readyTimeoutMs ?? 120000,
    // Killed with this process from the start, should it be interrupted while the server warms up.
    onSpawn: track,
  });
  return { ...server, log: opts.log };
}

/** Short sentences for the load; the model is random, so only their length matters. */
const SENTENCES = [
  'The weather is nice today.',
  'Where is the train station?',
  'I would like a cup of coffee, please.',
  'This sentence is a little longer than the others in the list.',
  'Hello world.',
  'Can you help me translate this document before tomorrow morning?',
  'We are testing the translation server.',
  'Thank you very much.',
];

export interface LoadResult {
  requests: number;
  ok: number;
  errors: Record<string, number>;
  seconds: number;
  latenciesMs: number[];
}

export { percentile } from '../../src/bench/stats.ts';

/**
 * Sends `total` requests (or until `maxSeconds`), `concurrency` at a time, each for a pair drawn by
 * `pickPair`. A request is POST /translate/{source}/{target} or, when `bodyRoute` says so, POST
 * /translate with the pair in the body.
 */
export async function runLoad(opts: {
  baseUrl: string | ((i: number) => string);
  total: number;
  maxSeconds: number;
  concurrency: number;
  pickPair: (i: number) => string;
  bodyRoute?: (i: number) => boolean;
  maxLength?: number;
  textsPerRequest?: number;
  seed?: number;
}): Promise<LoadResult> {
  const rand = mulberry32(opts.seed ?? 1); // every run of a benchmark sends the same requests
  const result: LoadResult = { requests: 0, ok: 0, errors: {}, seconds: 0, latenciesMs: [] };
  const started = performance.now();
  const deadline = Date.now() + opts.maxSeconds * 1000;
  await closedLoop({
    concurrency: opts.concurrency,
    request: (i) => {
      if (i >= opts.total || Date.now() >= deadline) return undefined;
      const [source, target] = opts.pickPair(i).split('-');
      const n = opts.textsPerRequest ?? 1;
      const q = Array.from({ length: n }, () => SENTENCES[Math.floor(rand() * SENTENCES.length)]);
      const base = typeof opts.baseUrl === 'function' ? opts.baseUrl(i) : opts.baseUrl;
      const inBody = opts.bodyRoute?.(i) ?? false;
      const body = inBody ? { q: n === 1 ? q[0] : q, source, target } : { q: n === 1 ? q[0] : q };
      if (opts.maxLength !== undefined) Object.assign(body, { max_length: opts.maxLength });
      return { url: inBody ? `${base}/translate` : `${base}/translate/${source}/${target}`, body };
    },
    onAnswer: (a) => {
      result.requests++;
      if (a.status === 200) {
        result.ok++;
        result.latenciesMs.push(a.doneMs - a.sentMs);
      } else {
        result.errors[String(a.status)] = (result.errors[String(a.status)] ?? 0) + 1;
      }
    },
  });
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

export interface Metrics {
  [name: string]: number;
}

/** Sums of the unlabelled (or all-label-summed) samples of the named metrics on /metrics. */
export async function scrape(baseUrl: string, names: string[]): Promise<Metrics> {
  const samples = parseMetrics(await (await fetch(`${baseUrl}/metrics`)).text());
  return Object.fromEntries(names.map((n) => [n, sumMetric(samples, n)]));
}
