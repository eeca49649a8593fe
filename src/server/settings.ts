// Every server setting, as a flag and a TASKMOE_* environment variable, with its default.
import { createRequire } from 'node:module';
import * as os from 'node:os';
import { DEFAULT_MODEL_DIR } from '../translator/index.ts';

export interface ServerSettings {
  port: number;
  host: string;
  modelDir: string;
  /** Engine worker threads. */
  workers: number;
  /** Device bytes each worker's sub-network cache may hold. */
  cacheBytes: number;
  maxBatchSentences: number;
  maxBatchTokens: number;
  maxDelayMs: number;
  /** Queued sentences per pair before 429. */
  maxQueuedSentences: number;
  /** A request's deadline, from its arrival. */
  timeoutMs: number;
  maxTexts: number;
  maxTextChars: number;
  bodyLimitBytes: number;
  maxBeam: number;
  maxAlternatives: number;
  /** How long SIGTERM waits for queued and running work. */
  drainGraceMs: number;
  /** Pairs loaded before /readyz turns 200: "all", "none" or a comma-separated list. */
  warm: string;
  /** Intra-op threads of each engine worker's kernels. */
  intraOpThreads: number;
  /** A sub-network gets another replica once its replicas were busy this percent of a window ... */
  replicaBusyPercent: number;
  /** ... or its sentences waited this long in the queue on average. */
  replicaWaitMs: number;
  /** Workers one sub-network may be resident on at most (1: no replicas). */
  maxReplicas: number;
  /** How often replica placement looks at the load, and over what window. */
  replicaWindowMs: number;
}

interface Spec {
  key: keyof ServerSettings;
  flag: string;
  env: string;
  help: string;
  kind: 'int' | 'string';
  default: () => number | string;
}

/** One worker per core on wasm/cpu; with tfjs-node-gpu one per GPU (one here, set TASKMOE_WORKERS for more). */
function defaultWorkers(): number {
  const backend = process.env.TASKMOE_BACKEND;
  let gpu = backend === 'gpu';
  if (backend === undefined) {
    try {
      createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
      gpu = true;
    } catch {
      gpu = false;
    }
  }
  return gpu ? 1 : Math.max(1, os.availableParallelism());
}

export const SETTINGS: readonly Spec[] = [
  { key: 'port', flag: 'port', env: 'PORT', kind: 'int', default: () => 8080, help: 'HTTP port' },
  { key: 'host', flag: 'host', env: 'TASKMOE_HOST', kind: 'string', default: () => '0.0.0.0', help: 'address to listen on' },
  { key: 'modelDir', flag: 'model', env: 'TASKMOE_MODEL', kind: 'string', default: () => DEFAULT_MODEL_DIR, help: 'checkpoint directory (full or extracted)' },
  { key: 'workers', flag: 'workers', env: 'TASKMOE_WORKERS', kind: 'int', default: defaultWorkers, help: 'engine worker threads (default: one per core on wasm/cpu, 1 with tfjs-node-gpu)' },
  { key: 'cacheBytes', flag: 'cache-mb', env: 'TASKMOE_CACHE_MB', kind: 'int', default: () => 1024, help: 'sub-network cache budget per worker, MiB' },
  { key: 'maxBatchSentences', flag: 'max-batch-sentences', env: 'TASKMOE_MAX_BATCH_SENTENCES', kind: 'int', default: () => 32, help: 'sentences per batch' },
  { key: 'maxBatchTokens', flag: 'max-batch-tokens', env: 'TASKMOE_MAX_BATCH_TOKENS', kind: 'int', default: () => 4096, help: 'source tokens per batch' },
  { key: 'maxDelayMs', flag: 'max-delay-ms', env: 'TASKMOE_MAX_DELAY_MS', kind: 'int', default: () => 10, help: 'longest a sentence waits for its batch to fill' },
  { key: 'maxQueuedSentences', flag: 'max-queue', env: 'TASKMOE_MAX_QUEUE', kind: 'int', default: () => 1024, help: 'queued sentences per pair before 429' },
  { key: 'timeoutMs', flag: 'timeout-ms', env: 'TASKMOE_TIMEOUT_MS', kind: 'int', default: () => 30000, help: 'request deadline; past it the answer is 504' },
  { key: 'maxTexts', flag: 'max-texts', env: 'TASKMOE_MAX_TEXTS', kind: 'int', default: () => 128, help: 'texts per request' },
  { key: 'maxTextChars', flag: 'max-chars', env: 'TASKMOE_MAX_CHARS', kind: 'int', default: () => 2000, help: 'characters per text (the model also limits tokens)' },
  { key: 'bodyLimitBytes', flag: 'body-limit', env: 'TASKMOE_BODY_LIMIT', kind: 'int', default: () => 1048576, help: 'request body bytes before 413' },
  { key: 'maxBeam', flag: 'max-beam', env: 'TASKMOE_MAX_BEAM', kind: 'int', default: () => 8, help: 'largest beam_size a request may ask for' },
  { key: 'maxAlternatives', flag: 'max-alternatives', env: 'TASKMOE_MAX_ALTERNATIVES', kind: 'int', default: () => 4, help: 'largest alternatives a request may ask for' },
  { key: 'drainGraceMs', flag: 'drain-grace-ms', env: 'TASKMOE_DRAIN_GRACE_MS', kind: 'int', default: () => 20000, help: 'on SIGTERM, time given to queued and running work' },
  { key: 'warm', flag: 'warm', env: 'TASKMOE_WARM', kind: 'string', default: () => 'all', help: 'pairs loaded before ready: all, none, or e.g. en-de,de-en' },
  { key: 'intraOpThreads', flag: 'intra-op-threads', env: 'TASKMOE_INTRA_OP_THREADS', kind: 'int', default: () => 1, help: 'threads each engine worker\'s kernels use (ONNX Runtime sessions; tfjs-wasm is single-threaded) (default 1: with one worker per core, measured best under load)' },
  { key: 'replicaBusyPercent', flag: 'replica-busy-percent', env: 'TASKMOE_REPLICA_BUSY_PERCENT', kind: 'int', default: () => 75, help: 'a sub-network busy this percent of a window on its workers gets a replica on a less busy worker with cache room (default 75)' },
  { key: 'replicaWaitMs', flag: 'replica-wait-ms', env: 'TASKMOE_REPLICA_WAIT_MS', kind: 'int', default: () => 250, help: '... as does one whose sentences waited this long in the queue on average (default 250)' },
  { key: 'maxReplicas', flag: 'max-replicas', env: 'TASKMOE_MAX_REPLICAS', kind: 'int', default: () => 64, help: 'workers one sub-network may be resident on; 1 turns replicas off (default 64, in effect every worker)' },
  { key: 'replicaWindowMs', flag: 'replica-window-ms', env: 'TASKMOE_REPLICA_WINDOW_MS', kind: 'int', default: () => 2000, help: 'how often replica placement looks at the load, and over what window (default 2000)' },
];

export class SettingsError extends Error {}

/** Settings from flags (highest precedence), then the environment, then defaults. */
export function resolveSettings(flags: Record<string, string | undefined>, env: NodeJS.ProcessEnv = process.env): ServerSettings {
  const out: Record<string, number | string> = {};
  for (const s of SETTINGS) {
    const raw = flags[s.flag] ?? env[s.env];
    if (raw === undefined || raw === '') {
      out[s.key] = s.default();
      continue;
    }
    if (s.kind === 'int') {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < (s.key === 'port' || s.key === 'maxDelayMs' ? 0 : 1)) {
        throw new SettingsError(`--${s.flag} / ${s.env} must be a ${s.key === 'port' || s.key === 'maxDelayMs' ? 'non-negative' : 'positive'} integer, got "${raw}"`);
      }
      out[s.key] = n;
    } else {
      out[s.key] = raw;
    }
  }
  const settings = out as unknown as ServerSettings;
  settings.cacheBytes *= 1024 * 1024;
  return settings;
}
