// The Grafana dashboard (deploy/grafana/taskmoe.json), built from one compact description of its
// panels. scripts/gen-deploy-assets.ts writes it; the checks evaluate every expression in it.

/** Label matchers every taskmoe query starts with: the dashboard's namespace and pod variables. */
const SEL = 'namespace="$namespace", pod=~"$pod"';
const PAIR = `${SEL}, pair=~"$pair"`;
const TRANSLATE = `${SEL}, route=~"/translate.*"`;
/** The generic process_* and nodejs_* series: only those of the taskmoe job. */
const PROC = `${SEL}, job="taskmoe"`;
const R = '[$__rate_interval]';

export interface PanelTarget {
  expr: string;
  legend: string;
}

export interface PanelSpec {
  title: string;
  /** What the panel tells an operator (shown in Grafana, and the README's panel table). */
  description: string;
  unit: string;
  targets: PanelTarget[];
  /** Must return data in the real-Prometheus check after a short load. */
  mustHaveData: boolean;
  /** Width in grid units (24 per row); 8 by default. */
  width?: number;
  min?: number;
  max?: number;
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const quantiles = (metric: string, by: string[], sel: string, qs: number[], legendPrefix = ''): PanelTarget[] =>
  qs.map((q) => ({
    expr: `histogram_quantile(${q}, sum by (${[...by, 'le'].join(', ')}) (rate(${metric}_bucket{${sel}}${R})))`,
    legend: `${legendPrefix}p${Math.round(q * 100)}${by.length > 0 ? ` ${by.map((b) => `{{${b}}}`).join(' ')}` : ''}`,
  }));

const mean = (metric: string, by: string, sel: string, legend: string): PanelTarget => ({
  expr: `sum by (${by}) (rate(${metric}_sum{${sel}}${R})) / sum by (${by}) (rate(${metric}_count{${sel}}${R}))`,
  legend,
});

export const ROWS: RowSpec[] = [
  {
    title: 'Throughput',
    panels: [
      {
        title: 'Generated tokens/s by pair',
        description:
          'Target tokens decoded per second, per language pair: the work the engines do. A pair that dominates is a candidate for its own replicas (pair routing) or a larger cache.',
        unit: 'short',
        targets: [{ expr: `sum by (pair) (rate(taskmoe_generated_tokens_total{${PAIR}}${R}))`, legend: '{{pair}}' }],
        mustHaveData: true,
      },
      {
        title: 'Requests/s by status code',
        description:
          'Translation requests per second by HTTP status. 200 is served; 400 a client error; 429 a full queue; 503 warming up, draining or an engine error; 504 a missed deadline.',
        unit: 'reqps',
        targets: [{ expr: `sum by (code) (rate(taskmoe_requests_total{${TRANSLATE}}${R}))`, legend: '{{code}}' }],
        mustHaveData: true,
      },
      {
        title: 'Source tokens/s by pair',
        description:
          'Source tokens read per second, per pair: the offered load. Against generated tokens/s it shows how long the outputs are.',
        unit: 'short',
        targets: [{ expr: `sum by (pair) (rate(taskmoe_source_tokens_total{${PAIR}}${R}))`, legend: '{{pair}}' }],
        mustHaveData: true,
      },
    ],
  },
  {
    title: 'Latency and queues',
    panels: [
      {
        title: 'Request latency p50 / p95 / p99',
        description:
          'End-to-end latency of /translate requests as the server measures it (queue wait, batching delay, decoding). The p99 alert fires above 5 s.',
        unit: 's',
        targets: quantiles('taskmoe_request_duration_seconds', [], TRANSLATE, [0.5, 0.95, 0.99]),
        mustHaveData: true,
      },
      {
        title: 'Queue depth by pair',
        description:
          'Sentences waiting for a batch, per pair. A queue that stays up means the engine cannot keep up with that pair; the HPA scales on the per-pod sum.',
        unit: 'short',
        targets: [{ expr: `sum by (pair) (taskmoe_queue_depth{${PAIR}})`, legend: '{{pair}}' }],
        mustHaveData: true,
      },
      {
        title: 'Queue wait p50 / p95 by pair',
        description:
          'How long sentences waited for their batch to start. Up to TASKMOE_MAX_DELAY_MS is batching by design; more is backlog.',
        unit: 's',
        targets: quantiles('taskmoe_queue_wait_seconds', ['pair'], PAIR, [0.5, 0.95]),
        mustHaveData: true,
      },
    ],
  },
  {
    title: 'Batching',
    panels: [
      {
        title: 'Batch size (sentences)',
        description:
          'Sentences per dispatched batch, mean and p95 per pair. Batches near TASKMOE_MAX_BATCH_SENTENCES mean the pair is busy and batching well; size 1 at high load means requests use many different options (beam, max_length).',
        unit: 'short',
        targets: [
          mean('taskmoe_batch_sentences', 'pair', PAIR, 'mean {{pair}}'),
          ...quantiles('taskmoe_batch_sentences', ['pair'], PAIR, [0.95]),
        ],
        mustHaveData: true,
      },
      {
        title: 'Batch size (tokens)',
        description:
          'Source tokens per batch, mean and p95 per pair, against TASKMOE_MAX_BATCH_TOKENS: long texts fill batches by tokens before sentences.',
        unit: 'short',
        targets: [
          mean('taskmoe_batch_tokens', 'pair', PAIR, 'mean {{pair}}'),
          ...quantiles('taskmoe_batch_tokens', ['pair'], PAIR, [0.95]),
        ],
        mustHaveData: true,
      },
      {
        title: 'Batch duration p50 / p95 by pair',
        description:
          'Time from a batch reaching its engine worker to its last sentence finishing: encode, decode, and any wait to join the running batch. Growth at a constant batch size points at the engine: a slower backend, a cold sub-network, or a throttled CPU.',
        unit: 's',
        targets: quantiles('taskmoe_batch_duration_seconds', ['pair'], PAIR, [0.5, 0.95]),
        mustHaveData: true,
      },
    ],
  },
  {
    title: 'Sub-network cache',
    panels: [
      {
        title: 'Cache hit ratio',
        description:
          'Share of sub-network lookups served from the cache, per pod. Low together with evictions is thrashing: the pairs a pod sees do not fit TASKMOE_CACHE_MB (raise it, or route by pair).',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [
          {
            expr: `sum by (pod) (rate(taskmoe_cache_hits_total{${SEL}}${R})) / (sum by (pod) (rate(taskmoe_cache_hits_total{${SEL}}${R})) + sum by (pod) (rate(taskmoe_cache_misses_total{${SEL}}${R})))`,
            legend: '{{pod}}',
          },
        ],
        mustHaveData: true,
      },
      {
        title: 'Cache bytes',
        description:
          'Device bytes held by cached sub-networks, per pod (all engine workers). Compare with the workers x TASKMOE_CACHE_MB budget and the memory limit.',
        unit: 'bytes',
        targets: [{ expr: `sum by (pod) (taskmoe_cache_bytes{${SEL}})`, legend: '{{pod}}' }],
        mustHaveData: true,
      },
      {
        title: 'Cache entries',
        description: 'Cached sub-network components (embeddings, encoders, decoders), per pod.',
        unit: 'short',
        targets: [{ expr: `sum by (pod) (taskmoe_cache_entries{${SEL}})`, legend: '{{pod}}' }],
        mustHaveData: true,
      },
      {
        title: 'Cache evictions/s',
        description:
          'Components evicted per second to make room, per pod. Steady evictions mean every miss costs a reload.',
        unit: 'short',
        targets: [{ expr: `sum by (pod) (rate(taskmoe_cache_evictions_total{${SEL}}${R}))`, legend: '{{pod}}' }],
        mustHaveData: true,
      },
      {
        title: 'Sub-network load time',
        description:
          'Time to read and extract one component on a miss, p50 and p95, and loads per second. This is the price a cold pair pays on its first request.',
        unit: 's',
        targets: [
          ...quantiles('taskmoe_subnetwork_load_seconds', [], SEL, [0.5, 0.95]),
          { expr: `sum(rate(taskmoe_subnetwork_load_seconds_count{${SEL}}${R}))`, legend: 'loads/s' },
        ],
        mustHaveData: false,
      },
      {
        title: 'Replicas and worker busy ratio',
        description:
          "Engine workers each sub-network is resident on (replicas follow load: a sub-network busy past TASKMOE_REPLICA_BUSY_PERCENT gets another worker with cache room), and each worker's busy fraction. Workers all near 1 with a sub-network on every one: the pod is at capacity.",
        unit: 'short',
        targets: [
          { expr: `max by (subnetwork) (taskmoe_subnetwork_replicas{${SEL}})`, legend: 'replicas {{subnetwork}}' },
          {
            expr: `avg by (pod, worker) (taskmoe_worker_busy_ratio{${SEL}})`,
            legend: 'busy {{pod}} worker {{worker}}',
          },
        ],
        mustHaveData: true,
      },
    ],
  },
  {
    title: 'Errors and resources',
    panels: [
      {
        title: 'Rejections by reason',
        description:
          'Requests refused per second: queue_full (429), deadline (504), draining / not_ready (503), engine_error (503), invalid / too_large (client errors), cancelled (client went away).',
        unit: 'reqps',
        targets: [{ expr: `sum by (reason) (rate(taskmoe_rejected_total{${SEL}}${R}))`, legend: '{{reason}}' }],
        mustHaveData: false,
      },
      {
        title: 'Sentences dropped in the engine',
        description:
          'Sentences per second of batches dropped in an engine worker before they finished, every request waiting for them having given up (deadline or disconnect). Sustained drops mean requests time out while decoding: the pod is overloaded, or --timeout-ms is too short for the load.',
        unit: 'short',
        targets: [{ expr: `sum by (pair) (rate(taskmoe_cancelled_sentences_total{${SEL}}${R}))`, legend: '{{pair}}' }],
        mustHaveData: false,
      },
      {
        title: 'Engine tensors',
        description:
          'Live tensors in the engine workers, per pod, reported after each batch. It moves with cache loads and evictions; growth without them is a leak (alert TaskmoeTensorLeak).',
        unit: 'short',
        targets: [{ expr: `sum by (pod) (taskmoe_engine_tensors{${SEL}})`, legend: '{{pod}}' }],
        mustHaveData: false,
      },
      {
        title: 'Process CPU',
        description:
          'CPU cores used by each taskmoe process (HTTP thread and engine workers together). Near the CPU request on a cpu pod is expected under load.',
        unit: 'short',
        targets: [{ expr: `sum by (pod) (rate(process_cpu_seconds_total{${PROC}}${R}))`, legend: '{{pod}}' }],
        mustHaveData: false,
      },
      {
        title: 'Process memory',
        description:
          'Resident memory and V8 heap per pod. RSS holds the cached sub-networks on the wasm backend; keep it under the memory limit.',
        unit: 'bytes',
        targets: [
          { expr: `sum by (pod) (process_resident_memory_bytes{${PROC}})`, legend: 'rss {{pod}}' },
          { expr: `sum by (pod) (nodejs_heap_size_used_bytes{${PROC}})`, legend: 'heap {{pod}}' },
        ],
        mustHaveData: false,
      },
    ],
  },
];

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

function queryVariable(name: string, label: string, query: string, multi: boolean) {
  return {
    name,
    label,
    type: 'query',
    datasource: DATASOURCE,
    query: { query, refId: `${name}-var` },
    definition: query,
    refresh: 2,
    sort: 1,
    multi,
    includeAll: multi,
    ...(multi ? { allValue: '.*', current: { selected: true, text: ['All'], value: ['$__all'] } } : { current: {} }),
    options: [],
    hide: 0,
    regex: '',
    skipUrlSync: false,
  };
}

/** The template variables' queries (Grafana's label_values(), not PromQL): name, metric selector, label. */
export const VARIABLE_QUERIES: { name: string; selector: string; label: string }[] = [
  { name: 'namespace', selector: 'taskmoe_requests_total', label: 'namespace' },
  { name: 'pod', selector: 'taskmoe_requests_total{namespace="$namespace"}', label: 'pod' },
  { name: 'pair', selector: 'taskmoe_queue_depth{namespace="$namespace", pod=~"$pod"}', label: 'pair' },
];

export function buildDashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({
      type: 'row',
      id: id++,
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
      panels: [],
    });
    y += 1;
    let x = 0;
    for (const p of row.panels) {
      const w = p.width ?? 8;
      if (x + w > 24) {
        x = 0;
        y += 8;
      }
      panels.push({
        type: 'timeseries',
        id: id++,
        title: p.title,
        description: p.description,
        datasource: DATASOURCE,
        gridPos: { h: 8, w, x, y },
        fieldConfig: {
          defaults: {
            unit: p.unit,
            ...(p.min !== undefined ? { min: p.min } : {}),
            ...(p.max !== undefined ? { max: p.max } : {}),
            custom: { lineWidth: 1, fillOpacity: 10, showPoints: 'never', spanNulls: true },
          },
          overrides: [],
        },
        options: {
          legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
        targets: p.targets.map((t, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: DATASOURCE,
          expr: t.expr,
          legendFormat: t.legend,
          range: true,
        })),
      });
      x += w;
    }
    y += 8;
  }
  return {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      { type: 'panel', id: 'timeseries', name: 'Time series', version: '' },
    ],
    uid: 'taskmoe-overview',
    title: 'taskmoe',
    description:
      'taskmoe translation servers: throughput, latency, queues, batching, sub-network cache, errors and resources.',
    tags: ['taskmoe'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    timezone: 'browser',
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
          options: [],
          refresh: 1,
          regex: '',
          skipUrlSync: false,
        },
        queryVariable('namespace', 'Namespace', `label_values(${VARIABLE_QUERIES[0].selector}, namespace)`, false),
        queryVariable('pod', 'Pod', `label_values(${VARIABLE_QUERIES[1].selector}, pod)`, true),
        queryVariable('pair', 'Pair', `label_values(${VARIABLE_QUERIES[2].selector}, pair)`, true),
      ],
    },
    annotations: { list: [] },
    links: [],
    panels,
  };
}
