// Every server setting, as a flag and a TASKMOE_* environment variable, with its default.
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
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
  /** Longest a client may take to send a request's headers, and its whole request (headers and body). */
  headerTimeoutMs: number;
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs: number;
  /** Open connections before further ones are closed as they arrive. */
  maxConnections: number;
  /** Which proxies' X-Forwarded-For names the client (rate limits, client shares): "" none, "true" any, a hop count, or addresses/CIDRs. */
  trustProxy: string;
  /** A request's largest cost in decoder row-steps (texts x beam x longest output); above it, 400. */
  maxRequestCost: number;
  /** Cost one client may have queued and running on one engine worker; above it, 429. */
  maxClientCost: number;
  /** /metrics on a port of its own ("" = on the API port). */
  metricsPort: string;
  /** When set, /metrics wants `Authorization: Bearer <token>`. */
  metricsToken: string;
  /** Where the server keeps its own files (the API key and usage database). */
  dataDir: string;
  /** A valid api_key is required on the translation routes. */
  apiKeys: boolean;
  /** Requests per minute per client (key, or address without one); 0: unlimited. */
  reqPerMinute: number;
  /** Characters per UTC day per client; 0: unlimited. */
  charsPerDay: number;
  /** No playground page at /. */
  disableWebUi: boolean;
  /** Origins allowed by CORS: "*" or a comma-separated list. */
  corsOrigins: string;
  /** Bytes of a file POST /translate_file takes before 413. */
  maxFileBytes: number;
  /** How long a translated file stays downloadable. */
  downloadTtlS: number;
  /** Bytes of translated files held for download (oldest dropped first). */
  downloadStoreBytes: number;
}

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

/** $XDG_DATA_HOME/taskmoe, as other per-user services keep their data. */
function defaultDataDir(): string {
  return path.join(process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share'), 'taskmoe');
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
  { key: 'port', flag: 'port', env: 'PORT', kind: 'int', min: 0, default: () => 8080, help: 'HTTP port' },
  { key: 'host', flag: 'host', env: 'TASKMOE_HOST', kind: 'string', default: () => '0.0.0.0', help: 'address to listen on' },
  { key: 'modelDir', flag: 'model', env: 'TASKMOE_MODEL', kind: 'string', default: () => DEFAULT_MODEL_DIR, help: 'checkpoint directory, full or extracted (default: the built-in demo model, models/demo)' },
  { key: 'workers', flag: 'workers', env: 'TASKMOE_WORKERS', kind: 'int', default: defaultWorkers, help: 'engine worker threads (default: one per core on wasm/cpu, 1 with tfjs-node-gpu)' },
  { key: 'cacheBytes', flag: 'cache-mb', env: 'TASKMOE_CACHE_MB', kind: 'int', default: () => 1024, help: 'sub-network cache budget per worker, MiB' },
  { key: 'maxBatchSentences', flag: 'max-batch-sentences', env: 'TASKMOE_MAX_BATCH_SENTENCES', kind: 'int', default: () => 32, help: 'sentences per batch' },
  { key: 'maxBatchTokens', flag: 'max-batch-tokens', env: 'TASKMOE_MAX_BATCH_TOKENS', kind: 'int', default: () => 4096, help: 'source tokens per batch' },
  { key: 'maxDelayMs', flag: 'max-delay-ms', env: 'TASKMOE_MAX_DELAY_MS', kind: 'int', min: 0, default: () => 10, help: 'longest a sentence waits for its batch to fill' },
  { key: 'maxQueuedSentences', flag: 'max-queue', env: 'TASKMOE_MAX_QUEUE', kind: 'int', default: () => 1024, help: 'queued sentences per pair before 429' },
  { key: 'timeoutMs', flag: 'timeout-ms', env: 'TASKMOE_TIMEOUT_MS', kind: 'int', default: () => 30000, help: 'request deadline; past it the answer is 504' },
  { key: 'maxTexts', flag: 'max-texts', env: 'TASKMOE_MAX_TEXTS', kind: 'int', default: () => 128, help: 'texts per request' },
  { key: 'maxTextChars', flag: 'max-chars', env: 'TASKMOE_MAX_CHARS', kind: 'int', default: () => 5000, help: 'characters per text (longer texts are cut into sentences the model takes)' },
  { key: 'bodyLimitBytes', flag: 'body-limit', env: 'TASKMOE_BODY_LIMIT', kind: 'int', default: () => 1048576, help: 'request body bytes before 413' },
  { key: 'maxBeam', flag: 'max-beam', env: 'TASKMOE_MAX_BEAM', kind: 'int', default: () => 8, help: 'largest beam_size a request may ask for' },
  { key: 'maxAlternatives', flag: 'max-alternatives', env: 'TASKMOE_MAX_ALTERNATIVES', kind: 'int', default: () => 4, help: 'largest alternatives a request may ask for' },
  { key: 'drainGraceMs', flag: 'drain-grace-ms', env: 'TASKMOE_DRAIN_GRACE_MS', kind: 'int', default: () => 20000, help: 'on SIGTERM, time until exit: queued and running work gets all but its last half (at most 2 s), kept for closing' },
  { key: 'corsOrigins', flag: 'cors-origins', env: 'TASKMOE_CORS_ORIGINS', kind: 'string', default: () => '*', help: 'origins CORS allows: * or e.g. https://a.example,https://b.example' },
  { key: 'maxFileBytes', flag: 'max-file-bytes', env: 'TASKMOE_MAX_FILE_BYTES', kind: 'int', default: () => 262144, help: 'bytes of a file /translate_file takes before 413' },
  { key: 'downloadTtlS', flag: 'download-ttl-s', env: 'TASKMOE_DOWNLOAD_TTL_S', kind: 'int', default: () => 600, help: 'seconds a translated file stays downloadable' },
  { key: 'downloadStoreBytes', flag: 'download-store-mb', env: 'TASKMOE_DOWNLOAD_STORE_MB', kind: 'int', default: () => 64, help: 'MiB of translated files held for download' },
  { key: 'warm', flag: 'warm', env: 'TASKMOE_WARM', kind: 'string', default: () => 'all', help: 'pairs loaded before ready: all, none, or e.g. en-de,de-en' },
  { key: 'intraOpThreads', flag: 'intra-op-threads', env: 'TASKMOE_INTRA_OP_THREADS', kind: 'int', default: () => 1, help: 'threads each engine worker\'s kernels use (ONNX Runtime sessions; tfjs-wasm is single-threaded); 1, with one worker per core, measured best under load' },
  { key: 'replicaBusyPercent', flag: 'replica-busy-percent', env: 'TASKMOE_REPLICA_BUSY_PERCENT', kind: 'int', default: () => 75, help: 'a sub-network busy this percent of a window on its workers gets a replica on a less busy worker with cache room' },
  { key: 'replicaWaitMs', flag: 'replica-wait-ms', env: 'TASKMOE_REPLICA_WAIT_MS', kind: 'int', default: () => 250, help: '... as does one whose sentences waited this long in the queue on average' },
  { key: 'maxReplicas', flag: 'max-replicas', env: 'TASKMOE_MAX_REPLICAS', kind: 'int', default: () => 64, help: 'workers one sub-network may be resident on; 1 turns replicas off (64: in effect every worker)' },
  { key: 'replicaWindowMs', flag: 'replica-window-ms', env: 'TASKMOE_REPLICA_WINDOW_MS', kind: 'int', default: () => 2000, help: 'how often replica placement looks at the load, and over what window' },
  { key: 'headerTimeoutMs', flag: 'header-timeout-ms', env: 'TASKMOE_HEADER_TIMEOUT_MS', kind: 'int', default: () => 10000, help: 'longest a client may take to send its request headers (then 408, connection closed)' },
  { key: 'requestTimeoutMs', flag: 'request-timeout-ms', env: 'TASKMOE_REQUEST_TIMEOUT_MS', kind: 'int', default: () => 20000, help: 'longest a client may take to send a whole request, headers and body (then 408, connection closed)' },
  { key: 'keepAliveTimeoutMs', flag: 'keep-alive-timeout-ms', env: 'TASKMOE_KEEP_ALIVE_TIMEOUT_MS', kind: 'int', default: () => 5000, help: 'how long an idle keep-alive connection stays open' },
  { key: 'maxConnections', flag: 'max-connections', env: 'TASKMOE_MAX_CONNECTIONS', kind: 'int', default: () => 1024, help: 'open connections; further ones are closed as they arrive' },
  { key: 'trustProxy', flag: 'trust-proxy', env: 'TASKMOE_TRUST_PROXY', kind: 'string', default: () => '', help: 'behind a proxy: whose X-Forwarded-For names the client for rate limits and client shares ("true" any, a hop count, or comma-separated addresses/CIDRs; off by default)' },
  { key: 'maxRequestCost', flag: 'max-request-cost', env: 'TASKMOE_MAX_REQUEST_COST', kind: 'int', default: () => 32768, help: "a request's largest cost, texts x beam x longest output in tokens (400 above it)" },
  { key: 'maxClientCost', flag: 'max-client-cost', env: 'TASKMOE_MAX_CLIENT_COST', kind: 'int', default: () => 65536, help: 'cost one client may have queued and running on one engine worker (429 above it)' },
  { key: 'metricsPort', flag: 'metrics-port', env: 'TASKMOE_METRICS_PORT', kind: 'string', default: () => '', help: 'serve /metrics on this port instead of the API port' },
  { key: 'metricsToken', flag: 'metrics-token', env: 'TASKMOE_METRICS_TOKEN', kind: 'string', default: () => '', help: '/metrics requires "Authorization: Bearer TOKEN"' },
  { key: 'dataDir', flag: 'data-dir', env: 'TASKMOE_DATA_DIR', kind: 'string', default: defaultDataDir, help: 'the server\'s own files: keys.sqlite (API keys and usage), created on first use (default $XDG_DATA_HOME/taskmoe)' },
  { key: 'apiKeys', flag: 'api-keys', env: 'TASKMOE_API_KEYS', kind: 'bool', default: () => false, help: 'require a valid api_key on the translation routes (manage keys with taskmoe keys)' },
  { key: 'reqPerMinute', flag: 'req-per-minute', env: 'TASKMOE_REQ_PER_MINUTE', kind: 'int', min: 0, default: () => 0, help: 'requests per minute per key (or address without one), 0 for no limit; a key\'s own limit wins' },
  { key: 'charsPerDay', flag: 'chars-per-day', env: 'TASKMOE_CHARS_PER_DAY', kind: 'int', min: 0, default: () => 0, help: 'characters per UTC day per key (or address without one), 0 for no limit; a key\'s own limit wins' },
  { key: 'disableWebUi', flag: 'disable-web-ui', env: 'TASKMOE_DISABLE_WEB_UI', kind: 'bool', default: () => false, help: 'no playground page at /' },
];

/** A setting's default as --help and the README show it; a default that depends on the machine is described in its help text instead. */
export function settingDefault(s: Spec): string {
  return s.help.includes('(default') ? 'see meaning' : `\`${JSON.stringify(s.default())}\``;
}

export class SettingsError extends Error {}

/** Settings from flags (highest precedence), then the environment, then defaults. */
export function resolveSettings(flags: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv = process.env): ServerSettings {
  const out: Record<string, number | string | boolean> = {};
  for (const s of SETTINGS) {
    const raw = flags[s.flag] ?? env[s.env];
    if (raw === undefined || raw === '') {
      out[s.key] = s.default();
      continue;
    }
    if (s.kind === 'bool') {
      // A flag is present or not; the environment variable says true/false.
      if (typeof raw === 'boolean') out[s.key] = raw;
      else if (/^(1|true|yes|on)$/i.test(raw)) out[s.key] = true;
      else if (/^(0|false|no|off)$/i.test(raw)) out[s.key] = false;
      else throw new SettingsError(`--${s.flag} / ${s.env} must be true or false, got "${raw}"`);
    } else if (s.kind === 'int') {
      const n = Number(raw);
      const min = s.min ?? 1;
      if (!Number.isInteger(n) || n < min) {
        throw new SettingsError(`--${s.flag} / ${s.env} must be a ${min === 0 ? 'non-negative' : 'positive'} integer, got "${raw}"`);
      }
      out[s.key] = n;
    } else {
      out[s.key] = raw;
    }
  }
  const settings = out as unknown as ServerSettings;
  settings.cacheBytes *= 1024 * 1024;
  if (settings.metricsPort !== '' && !/^\d+$/.test(settings.metricsPort)) {
    throw new SettingsError(`--metrics-port / TASKMOE_METRICS_PORT must be a port number, got "${settings.metricsPort}"`);
  }
  if (settings.headerTimeoutMs > settings.requestTimeoutMs) {
    throw new SettingsError(`--header-timeout-ms (${settings.headerTimeoutMs}) must not exceed --request-timeout-ms (${settings.requestTimeoutMs})`);
  }
  settings.downloadStoreBytes *= 1024 * 1024;
  return settings;
}
