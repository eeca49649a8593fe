// Server settings (continued from ./setting-specs.ts): warm-up, replica placement, connection limits and
// costs, /metrics, and access (API keys, rate limits, the playground).
import * as os from 'node:os';
import * as path from 'node:path';
import type { Spec } from './setting-specs.ts';

/** $XDG_DATA_HOME/taskmoe, as other per-user services keep their data. */
function defaultDataDir(): string {
  return path.join(process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share'), 'taskmoe');
}

export const OPERATION_SETTINGS: readonly Spec[] = [
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
