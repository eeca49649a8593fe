// The server's settings: their type, and their resolution from flags, the environment and defaults.
// Each setting's flag, TASKMOE_* variable, default and help text are defined in ./setting-specs.ts.
import { SETTINGS } from './setting-specs.ts';

export { SETTINGS, settingDefault, type Spec } from './setting-specs.ts';

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
  /** No new replica while threads waited for a CPU more than this percent of the last 10 s (100: off). */
  replicaMaxCpuPressurePercent: number;
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

export class SettingsError extends Error {}

/** Settings from flags (highest precedence), then the environment, then defaults. */
export function resolveSettings(
  flags: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv = process.env,
): ServerSettings {
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
        throw new SettingsError(
          `--${s.flag} / ${s.env} must be a ${min === 0 ? 'non-negative' : 'positive'} integer, got "${raw}"`,
        );
      }
      out[s.key] = n;
    } else {
      out[s.key] = raw;
    }
  }
  const settings = out as unknown as ServerSettings;
  settings.cacheBytes *= 1024 * 1024;
  if (settings.metricsPort !== '' && !/^\d+$/.test(settings.metricsPort)) {
    throw new SettingsError(
      `--metrics-port / TASKMOE_METRICS_PORT must be a port number, got "${settings.metricsPort}"`,
    );
  }
  if (settings.headerTimeoutMs > settings.requestTimeoutMs) {
    throw new SettingsError(
      `--header-timeout-ms (${settings.headerTimeoutMs}) must not exceed --request-timeout-ms (${settings.requestTimeoutMs})`,
    );
  }
  settings.downloadStoreBytes *= 1024 * 1024;
  return settings;
}
