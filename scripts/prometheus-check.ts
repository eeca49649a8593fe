// The dashboard, the alert rules and the prometheus-adapter rules against a real Prometheus.
//
// Starts taskmoe (a small random checkpoint, a cache too small for all its sub-networks) and
// Debian's prometheus on loopback (temporary data directory, bounded lifetime, scraping every
// second, loading deploy/prometheus/*.rules.yml), sends a short multi-pair load, then evaluates
// through Prometheus's HTTP API:
//  - every PromQL expression of the Grafana dashboard, with the variables filled in as Grafana
//    does; each must parse and run, and the throughput, latency, queue, batch and cache panels must
//    return data;
//  - the dashboard's variable queries (label_values) through the series API: each finds values;
//  - every alert rule: it must run, and Prometheus must report the rule healthy after evaluating it;
//  - every prometheus-adapter rule: its seriesQuery must find taskmoe's series and its metricsQuery,
//    with the adapter's template filled in for one pod, must return a value for that pod.
//
//   node --import tsx scripts/prometheus-check.ts [--report FILE] [--keep]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROWS, VARIABLE_QUERIES } from './lib/dashboard.ts';
import { adapterRules } from './lib/deploy-checks.ts';
import { type Proc, freePort, httpOk, sleep, start, tempDir, waitFor } from './lib/proc.ts';
import { ROOT, makeCheckpoint, runLoad, startTaskmoe } from './lib/taskmoe.ts';

const NAMESPACE = 'taskmoe-check';
const POD = 'taskmoe-check-0';
const RULES_DIR = path.join(ROOT, 'deploy/prometheus');

interface QueryResult {
  status: string;
  error?: string;
  series: number;
  values: number[];
}

async function query(prom: string, expr: string): Promise<QueryResult> {
  const r = await fetch(`${prom}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = (await r.json()) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: { value: [number, string] }[] | [number, string] };
  };
  if (body.status !== 'success') return { status: body.status, error: body.error, series: 0, values: [] };
  const res = body.data!.result;
  if (body.data!.resultType === 'scalar' || body.data!.resultType === 'string')
    return { status: 'success', series: 1, values: [Number((res as [number, string])[1])] };
  const vec = res as { value: [number, string] }[];
  return { status: 'success', series: vec.length, values: vec.map((s) => Number(s.value[1])) };
}

async function seriesLabels(prom: string, match: string): Promise<Record<string, string>[]> {
  const r = await fetch(
    `${prom}/api/v1/series?${new URLSearchParams({ 'match[]': match, start: String(Date.now() / 1000 - 600) })}`,
  );
  const body = (await r.json()) as { status: string; error?: string; data: Record<string, string>[] };
  if (body.status !== 'success') throw new Error(`series ${match}: ${body.error}`);
  return body.data;
}

/** Grafana's substitutions: a single namespace, All (.*) for the multi-value pod and pair variables. */
export function fillDashboardVariables(expr: string, rateInterval = '1m'): string {
  return expr
    .replaceAll('$__rate_interval', rateInterval)
    .replaceAll('$namespace', NAMESPACE)
    .replaceAll('$pod', '.*')
    .replaceAll('$pair', '.*');
}

/** prometheus-adapter's template for a pods query in one namespace. */
export function fillAdapterTemplate(metricsQuery: string, series: string): string {
  return metricsQuery
    .replaceAll('<<.Series>>', series)
    .replaceAll('<<.LabelMatchers>>', `namespace="${NAMESPACE}",pod=~"${POD}"`)
    .replaceAll('<<.GroupBy>>', 'pod');
}

interface Line {
  kind: string;
  name: string;
  expr: string;
  ok: boolean;
  note: string;
}

async function main(argv: string[]): Promise<number> {
  const reportFile = argv.includes('--report') ? argv[argv.indexOf('--report') + 1] : undefined;
  const keep = argv.includes('--keep');
  const work = tempDir('taskmoe-promcheck-');
  const procs: Proc[] = [];
  const lines: Line[] = [];
  try {
    console.log(`work dir ${work}`);
    const model = makeCheckpoint(path.join(work, 'ckpt'), {
      dModel: 64,
      dFF: 256,
      layers: 2,
      experts: 6,
      routing: { encoder: 'token', decoder: 'target' },
      languages: ['en', 'de', 'fr', 'ru'],
      pairs: ['en-de', 'de-en', 'en-fr', 'fr-en', 'en-ru', 'ru-en', 'de-fr', 'fr-de'],
      maxLength: 64,
    });
    const port = await freePort();
    const taskmoeUrl = `http://127.0.0.1:${port}`;
    // 2 MiB holds the embeddings, the shared encoder and one of the four target decoders: misses and evictions.
    procs.push(
      await startTaskmoe({
        name: 'taskmoe',
        model,
        port,
        log: path.join(work, 'taskmoe.log'),
        lifetimeS: 240,
        workers: 1,
        cacheMb: 2,
      }),
    );
    console.log(`taskmoe ready on ${taskmoeUrl}`);

    const promPort = await freePort();
    const prom = `http://127.0.0.1:${promPort}`;
    const ruleFiles = fs
      .readdirSync(RULES_DIR)
      .filter((f) => /\.rules\.ya?ml$/.test(f))
      .map((f) => path.join(RULES_DIR, f));
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: ruleFiles,
      scrape_configs: [
        {
          job_name: 'taskmoe',
          static_configs: [{ targets: [`127.0.0.1:${port}`], labels: { namespace: NAMESPACE, pod: POD } }],
        },
      ],
    };
    const configFile = path.join(work, 'prometheus.yml');
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
    procs.push(
      start(
        'prometheus',
        'prometheus',
        [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${path.join(work, 'tsdb')}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          '--storage.tsdb.retention.time=1h',
          '--log.level=warn',
        ],
        { log: path.join(work, 'prometheus.log'), lifetimeS: 200 },
      ),
    );
    await waitFor('prometheus /-/ready', () => httpOk(`${prom}/-/ready`), 60000, procs[1]);
    await waitFor(
      'the first scrape of taskmoe',
      async () => (await query(prom, `up{job="taskmoe"} == 1`)).series === 1,
      30000,
      procs[1],
    );
    console.log(`prometheus ready on ${prom}`);

    // A short load: all pairs, both routes, one in ten with an unsupported pair (a 400, so rejections show).
    const pairs = ['en-de', 'de-en', 'en-fr', 'fr-en', 'en-ru', 'ru-en', 'de-fr', 'fr-de'];
    const load = await runLoad({
      baseUrl: taskmoeUrl,
      total: 400,
      maxSeconds: 15,
      concurrency: 6,
      pickPair: (i) => (i % 10 === 9 ? 'ru-fr' : pairs[Math.floor(i / 3) % pairs.length]),
      bodyRoute: (i) => i % 2 === 0,
      maxLength: 12,
      textsPerRequest: 2,
    });
    console.log(
      `load: ${load.requests} requests in ${load.seconds.toFixed(1)} s, ${load.ok} ok, errors ${JSON.stringify(load.errors)}`,
    );
    if (load.ok < 20) throw new Error('the load got fewer than 20 answers');
    await sleep(3000); // two more scrapes and rule evaluations

    // Dashboard expressions.
    for (const row of ROWS) {
      for (const panel of row.panels) {
        for (const t of panel.targets) {
          const expr = fillDashboardVariables(t.expr);
          const r = await query(prom, expr);
          const finite = r.values.filter((v) => Number.isFinite(v));
          let ok = r.status === 'success';
          let note = ok
            ? `${r.series} series, ${finite.length} finite${finite.length > 0 ? `, e.g. ${finite[0].toPrecision(4)}` : ''}`
            : `error: ${r.error}`;
          if (ok && panel.mustHaveData && finite.length === 0) {
            ok = false;
            note += ' (this panel must return data)';
          }
          lines.push({ kind: 'panel', name: `${row.title} / ${panel.title} [${t.legend}]`, expr, ok, note });
        }
      }
    }
    // Dashboard variables (Grafana's label_values(selector, label)).
    for (const v of VARIABLE_QUERIES) {
      const selector = v.selector.replaceAll('$namespace', NAMESPACE).replaceAll('$pod', '.*');
      const values = [...new Set((await seriesLabels(prom, selector)).map((s) => s[v.label]).filter(Boolean))];
      lines.push({
        kind: 'variable',
        name: v.name,
        expr: `label_values(${selector}, ${v.label})`,
        ok: values.length > 0,
        note: values.join(', ') || 'no values',
      });
    }
    // Alert rules: each expression runs, and Prometheus evaluated each rule without error.
    const rulesApi = (await (await fetch(`${prom}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string; state?: string }[] }[] };
    };
    const health = new Map(rulesApi.data.groups.flatMap((g) => g.rules).map((r) => [r.name, r]));
    for (const f of ruleFiles) {
      const doc = parseYaml(fs.readFileSync(f, 'utf8')) as {
        groups: { rules: { alert?: string; record?: string; expr: string }[] }[];
      };
      for (const rule of doc.groups.flatMap((g) => g.rules)) {
        const name = rule.alert ?? rule.record ?? '?';
        const r = await query(prom, rule.expr);
        const h = health.get(name);
        const ok = r.status === 'success' && h?.health === 'ok';
        lines.push({
          kind: 'rule',
          name,
          expr: rule.expr.trim(),
          ok,
          note: `${r.status === 'success' ? `${r.series} series` : `error: ${r.error}`}; prometheus: health ${h?.health ?? 'not loaded'}${h?.state ? `, ${h.state}` : ''}${h?.lastError ? `, ${h.lastError}` : ''}`,
        });
      }
    }
    // prometheus-adapter rules.
    for (const rule of adapterRules()) {
      const found = await seriesLabels(prom, rule.seriesQuery);
      const names = [...new Set(found.map((s) => s.__name__))];
      const matching = names.filter((n) => new RegExp(rule.name.matches).test(n));
      lines.push({
        kind: 'adapter',
        name: `${rule.name.as} seriesQuery`,
        expr: rule.seriesQuery,
        ok: matching.length > 0 && found.every((s) => s.namespace && s.pod),
        note: `${found.length} series: ${names.join(', ')}`,
      });
      for (const series of matching) {
        const expr = fillAdapterTemplate(rule.metricsQuery, series);
        const r = await query(prom, expr);
        const finite = r.values.filter((v) => Number.isFinite(v));
        lines.push({
          kind: 'adapter',
          name: `${rule.name.as} metricsQuery`,
          expr,
          ok: r.status === 'success' && finite.length === 1,
          note: r.status === 'success' ? `${r.series} series, value ${finite[0]}` : `error: ${r.error}`,
        });
      }
    }
  } finally {
    const codes = await Promise.all(procs.map(async (p) => [p.name, await p.stop()] as const));
    for (const [name, code] of codes) if (code !== 0 && code !== null) console.log(`note: ${name} exited with ${code}`);
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
  }
  const failed = lines.filter((l) => !l.ok);
  for (const l of lines)
    console.log(
      `${l.ok ? 'ok  ' : 'FAIL'} ${l.kind.padEnd(8)} ${l.name}: ${l.note}${l.ok ? '' : `\n       ${l.expr.replace(/\s+/g, ' ')}`}`,
    );
  const summary = `prometheus-check: ${lines.length - failed.length} passed, ${failed.length} failed`;
  console.log(summary);
  if (reportFile) fs.writeFileSync(reportFile, JSON.stringify({ lines, summary }, null, 2));
  return failed.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`prometheus check failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  },
);
