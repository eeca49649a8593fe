// The server settings' definitions: flag, environment variable, kind, default and help text, in --help order.
// Listening, the engine, batching and per-request limits are here; warm-up, replica placement, connections
// and access are in ./setting-specs-operation.ts. Resolution (flags > environment > defaults) is in ./settings.ts.
import { createRequire } from 'node:module';
import * as os from 'node:os';
import { DEFAULT_MODEL_DIR } from '../translator/index.ts';
import type { ServerSettings } from './settings.ts';
import { OPERATION_SETTINGS } from './setting-specs-operation.ts';

export interface Spec {
  key: keyof ServerSettings;
  flag: string;
  env: string;
  help: string;
  kind: 'int' | 'string' | 'bool';
  default: () => number | string | boolean;
  /** The smallest int allowed (default 1). */
  min?: number;
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

/** Listening, the model and its engine workers, batching, and what one request may ask. */
const REQUEST_SETTINGS: readonly Spec[] = [
  { key: 'port', flag: 'port', env: 'PORT', kind: 'int', min: 0, default: () => 8080, help: 'HTTP port' },
  {
    key: 'host',
    flag: 'host',
    env: 'TASKMOE_HOST',
    kind: 'string',
    default: () => '0.0.0.0',
    help: 'address to listen on',
  },
  {
    key: 'modelDir',
    flag: 'model',
    env: 'TASKMOE_MODEL',
    kind: 'string',
    default: () => DEFAULT_MODEL_DIR,
    help: 'checkpoint directory, full or extracted (default: the built-in demo model, models/demo)',
  },
  {
    key: 'workers',
    flag: 'workers',
    env: 'TASKMOE_WORKERS',
    kind: 'int',
    default: defaultWorkers,
    help: 'engine worker threads (default: one per core on wasm/cpu, 1 with tfjs-node-gpu)',
  },
  {
    key: 'cacheBytes',
    flag: 'cache-mb',
    env: 'TASKMOE_CACHE_MB',
    kind: 'int',
    default: () => 1024,
    help: 'sub-network cache budget per worker, MiB',
  },
  {
    key: 'maxBatchSentences',
    flag: 'max-batch-sentences',
    env: 'TASKMOE_MAX_BATCH_SENTENCES',
    kind: 'int',
    default: () => 32,
    help: 'sentences per batch',
  },
  {
    key: 'maxBatchTokens',
    flag: 'max-batch-tokens',
    env: 'TASKMOE_MAX_BATCH_TOKENS',
    kind: 'int',
    default: () => 4096,
    help: 'source tokens per batch',
  },
  {
    key: 'maxDelayMs',
    flag: 'max-delay-ms',
    env: 'TASKMOE_MAX_DELAY_MS',
    kind: 'int',
    min: 0,
    default: () => 10,
    help: 'longest a sentence waits for its batch to fill',
  },
  {
    key: 'maxQueuedSentences',
    flag: 'max-queue',
    env: 'TASKMOE_MAX_QUEUE',
    kind: 'int',
    default: () => 1024,
    help: 'queued sentences per pair before 429',
  },
  {
    key: 'timeoutMs',
    flag: 'timeout-ms',
    env: 'TASKMOE_TIMEOUT_MS',
    kind: 'int',
    default: () => 30000,
    help: 'request deadline; past it the answer is 504',
  },
  {
    key: 'maxTexts',
    flag: 'max-texts',
    env: 'TASKMOE_MAX_TEXTS',
    kind: 'int',
    default: () => 128,
    help: 'texts per request',
  },
  {
    key: 'maxTextChars',
    flag: 'max-chars',
    env: 'TASKMOE_MAX_CHARS',
    kind: 'int',
    default: () => 5000,
    help: 'characters per text (longer texts are cut into sentences the model takes)',
  },
  {
    key: 'bodyLimitBytes',
    flag: 'body-limit',
    env: 'TASKMOE_BODY_LIMIT',
    kind: 'int',
    default: () => 1048576,
    help: 'request body bytes before 413',
  },
  {
    key: 'maxBeam',
    flag: 'max-beam',
    env: 'TASKMOE_MAX_BEAM',
    kind: 'int',
    default: () => 8,
    help: 'largest beam_size a request may ask for',
  },
  {
    key: 'maxAlternatives',
    flag: 'max-alternatives',
    env: 'TASKMOE_MAX_ALTERNATIVES',
    kind: 'int',
    default: () => 4,
    help: 'largest alternatives a request may ask for',
  },
  {
    key: 'drainGraceMs',
    flag: 'drain-grace-ms',
    env: 'TASKMOE_DRAIN_GRACE_MS',
    kind: 'int',
    default: () => 20000,
    help: 'on SIGTERM, time until exit: queued and running work gets all but its last half (at most 2 s), kept for closing',
  },
  {
    key: 'corsOrigins',
    flag: 'cors-origins',
    env: 'TASKMOE_CORS_ORIGINS',
    kind: 'string',
    default: () => '*',
    help: 'origins CORS allows: * or e.g. https://a.example,https://b.example',
  },
  {
    key: 'maxFileBytes',
    flag: 'max-file-bytes',
    env: 'TASKMOE_MAX_FILE_BYTES',
    kind: 'int',
    default: () => 262144,
    help: 'bytes of a file /translate_file takes before 413',
  },
  {
    key: 'downloadTtlS',
    flag: 'download-ttl-s',
    env: 'TASKMOE_DOWNLOAD_TTL_S',
    kind: 'int',
    default: () => 600,
    help: 'seconds a translated file stays downloadable',
  },
  {
    key: 'downloadStoreBytes',
    flag: 'download-store-mb',
    env: 'TASKMOE_DOWNLOAD_STORE_MB',
    kind: 'int',
    default: () => 64,
    help: 'MiB of translated files held for download',
  },
];

export const SETTINGS: readonly Spec[] = [...REQUEST_SETTINGS, ...OPERATION_SETTINGS];

/** A setting's default as --help and the README show it; a default that depends on the machine is described in its help text instead. */
export function settingDefault(s: Spec): string {
  return s.help.includes('(default') ? 'see meaning' : `\`${JSON.stringify(s.default())}\``;
}
