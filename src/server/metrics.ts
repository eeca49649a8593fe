// The server's Prometheus metrics, one registry per app instance so that several apps (tests)
// never share or double-register series.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// Request latencies of a CPU/GPU translation server: from a few ms (cache hit, short text) to tens of seconds (queued, long beam).
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const SENTENCE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
const TOKEN_BUCKETS = [16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384];
const LOAD_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'taskmoe_requests_total',
    help: 'HTTP requests by route and status code',
    labelNames: ['route', 'code'],
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'taskmoe_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly queueWait = new Histogram({
    name: 'taskmoe_queue_wait_seconds',
    help: 'Time a sentence waited in its pair queue before its batch started',
    labelNames: ['pair'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'taskmoe_queue_depth',
    help: 'Sentences queued per pair',
    labelNames: ['pair'],
    registers: [this.registry],
  });
  readonly batchSentences = new Histogram({
    name: 'taskmoe_batch_sentences',
    help: 'Sentences per dispatched batch',
    labelNames: ['pair'],
    buckets: SENTENCE_BUCKETS,
    registers: [this.registry],
  });
  readonly batchTokens = new Histogram({
    name: 'taskmoe_batch_tokens',
    help: 'Source tokens per dispatched batch',
    labelNames: ['pair'],
    buckets: TOKEN_BUCKETS,
    registers: [this.registry],
  });
  readonly batchDuration = new Histogram({
    name: 'taskmoe_batch_duration_seconds',
    help: 'Engine time per batch, from reaching its worker to its last sentence done (encode, decode, waiting to join the running batch)',
    labelNames: ['pair'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly generatedTokens = new Counter({
    name: 'taskmoe_generated_tokens_total',
    help: 'Target tokens generated',
    labelNames: ['pair'],
    registers: [this.registry],
  });
  readonly sourceTokens = new Counter({
    name: 'taskmoe_source_tokens_total',
    help: 'Source tokens translated',
    labelNames: ['pair'],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: 'taskmoe_cache_hits_total',
    help: 'Sub-network cache hits',
    registers: [this.registry],
  });
  readonly cacheMisses = new Counter({
    name: 'taskmoe_cache_misses_total',
    help: 'Sub-network cache misses (loads)',
    registers: [this.registry],
  });
  readonly cacheEvictions = new Counter({
    name: 'taskmoe_cache_evictions_total',
    help: 'Sub-network cache evictions',
    registers: [this.registry],
  });
  readonly cacheBytes = new Gauge({
    name: 'taskmoe_cache_bytes',
    help: 'Bytes held on the device by cached sub-networks',
    registers: [this.registry],
  });
  readonly cacheEntries = new Gauge({
    name: 'taskmoe_cache_entries',
    help: 'Cached sub-network components',
    registers: [this.registry],
  });
  readonly subnetworkLoad = new Histogram({
    name: 'taskmoe_subnetwork_load_seconds',
    help: 'Time to read and extract one sub-network component',
    buckets: LOAD_BUCKETS,
    registers: [this.registry],
  });
  readonly engineTensors = new Gauge({
    name: 'taskmoe_engine_tensors',
    help: 'Live tensors in the engine workers (tf.memory().numTensors)',
    registers: [this.registry],
  });
  readonly cancelledSentences = new Counter({
    name: 'taskmoe_cancelled_sentences_total',
    help: 'Sentences of batches dropped in the engine before they finished, because every request waiting for them gave up (deadline, disconnect)',
    labelNames: ['pair'],
    registers: [this.registry],
  });
  readonly subnetworkReplicas = new Gauge({
    name: 'taskmoe_subnetwork_replicas',
    help: 'Engine workers a sub-network is resident on (replicas follow load, see docs/replicas.md)',
    labelNames: ['subnetwork'],
    registers: [this.registry],
  });
  readonly workerBusy = new Gauge({
    name: 'taskmoe_worker_busy_ratio',
    help: 'Fraction of the last replica window each engine worker ran at least one batch',
    labelNames: ['worker'],
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'taskmoe_rejected_total',
    help: 'Requests refused, by reason (see errors.ts)',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
