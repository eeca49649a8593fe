// Pair affinity, measured: real nginx in front of 3 taskmoe processes on loopback, each with a
// sub-network cache that holds about a third of the model's task sub-networks, under a bounded
// multi-pair load of POST /translate/{source}/{target}. Each balancing mode gets fresh (cold)
// servers and the same request sequence:
//   rr      round-robin (nginx's default)
//   uri     hash $uri consistent (what ingress-nginx's upstream-hash-by: "$uri" does)
//   target  hash on the target language taken from the URI (a map), consistent
// and reports the servers' cache hit ratio, loads and evictions (from their /metrics) and the
// client's throughput, p50 and p99 latency.
//
//   node --import tsx scripts/affinity-bench.ts [--routing pair,target] [--modes rr,uri,target]
//     [--requests N] [--concurrency N] [--max-seconds N] [--d-model N] [--json FILE] [--keep]
//
// scripts/affinity-bench.sh installs Debian's nginx first when it is missing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { mulberry32 } from '../src/util/random.ts';
import { type Proc, freePort, hasCommand, httpOk, sleep, start, tempDir, waitFor } from './lib/proc.ts';
import {
  FIXTURE_LANGUAGES,
  ROOT,
  allPairs,
  makeCheckpoint,
  percentile,
  runLoad,
  scrape,
  startTaskmoe,
} from './lib/taskmoe.ts';

const MODES = {
  rr: { upstream: '', label: 'round-robin' },
  uri: { upstream: 'hash $uri consistent;', label: 'hash $uri consistent' },
  target: { upstream: 'hash $taskmoe_target consistent;', label: 'hash target consistent' },
} as const;
type Mode = keyof typeof MODES;

function nginxConfig(dir: string, listen: number, mode: Mode, servers: number[]): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => {
    const d = path.join(dir, `tmp-${t}`);
    fs.mkdirSync(d, { recursive: true, mode: 0o777 });
    fs.chmodSync(d, 0o777);
    return `  ${t === 'client_body' ? 'client_body' : t}_temp_path ${d};`;
  });
  return `worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'nginx-error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
${temp.join('\n')}
  # The target language of POST /translate/{source}/{target}.
  map $uri $taskmoe_target {
    ~^/translate/[^/]+/(?<t>[^/]+)$ $t;
    default $uri;
  }
  upstream taskmoe {
    ${MODES[mode].upstream}
${servers.map((p) => `    server 127.0.0.1:${p} max_fails=0;`).join('\n')}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${listen};
    location / {
      proxy_pass http://taskmoe;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 120s;
    }
  }
}
`;
}

interface ModeResult {
  routing: string;
  mode: Mode;
  label: string;
  requests: number;
  ok: number;
  errors: Record<string, number>;
  seconds: number;
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  hits: number;
  misses: number;
  evictions: number;
  hitRatio: number;
  /** Translation requests each server got. */
  perServer: number[];
  /** Distinct pairs each server saw. */
  pairsPerServer: number[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      routing: { type: 'string', default: 'pair,target' },
      modes: { type: 'string', default: 'rr,uri,target' },
      requests: { type: 'string', default: '600' },
      concurrency: { type: 'string', default: '6' },
      'max-seconds': { type: 'string', default: '120' },
      'd-model': { type: 'string', default: '256' },
      'cache-mb': { type: 'string' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
      seed: { type: 'string', default: '7' },
    },
  });
  if (!hasCommand('nginx'))
    throw new Error("nginx is not installed (scripts/affinity-bench.sh installs Debian's nginx)");
  const routings = values.routing!.split(',').map((r) => r.trim());
  for (const r of routings) if (r !== 'pair' && r !== 'target') throw new Error('--routing takes pair, target or both');
  const modes = values.modes!.split(',').map((m) => m.trim()) as Mode[];
  for (const m of modes) if (!(m in MODES)) throw new Error(`unknown mode ${m}`);
  const total = Number(values.requests);
  const concurrency = Number(values.concurrency);
  const dModel = Number(values['d-model']);
  const work = tempDir('taskmoe-affinity-');
  fs.chmodSync(work, 0o755);
  const procs: Proc[] = [];
  const results: ModeResult[] = [];
  try {
    for (const routing of routings) {
      const languages = FIXTURE_LANGUAGES;
      const pairs = allPairs(languages);
      console.log(
        `model: Token/${routing === 'pair' ? 'Pair' : 'Target'} routing, ${languages.length} languages, ${pairs.length} pairs, dModel ${dModel} (random weights)`,
      );
      const model = makeCheckpoint(path.join(work, `ckpt-${routing}`), {
        dModel,
        dFF: dModel * 4,
        layers: 2,
        experts: 8,
        routing: { encoder: 'token', decoder: routing },
        languages,
        pairs,
        maxLength: 64,
      });
      // Size the cache: the shared parts (embeddings, token-routed encoder) plus a third of the
      // task decoders, plus one.
      const inspect = JSON.parse(
        execFileSync(
          process.execPath,
          ['--import', 'tsx', path.join(ROOT, 'test/helpers/cli-entry.ts'), 'inspect', model, '--json'],
          { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
        ),
      ) as {
        subnetworks: { params: { encoder: number; decoder: number; embeddings: number } }[];
      };
      const sn = inspect.subnetworks;
      const shared = (sn[0].params.encoder + sn[0].params.embeddings) * 4;
      const decoder = sn[0].params.decoder * 4;
      const fit = Math.ceil(sn.length / 3) + 1;
      const cacheMb =
        values['cache-mb'] !== undefined ? Number(values['cache-mb']) : Math.ceil((shared + fit * decoder) / 2 ** 20);
      console.log(
        `${sn.length} task sub-networks; shared ${(shared / 2 ** 20).toFixed(1)} MiB + ${(decoder / 2 ** 20).toFixed(1)} MiB per decoder; cache ${cacheMb} MiB per server (about ${Math.floor((cacheMb * 2 ** 20 - shared) / decoder)} decoders)`,
      );

      // One request sequence for every mode: uniform over the pairs.
      const rand = mulberry32(Number(values.seed));
      const sequence = Array.from({ length: total }, () => pairs[Math.floor(rand() * pairs.length)]);
      const ports = [await freePort(), await freePort(), await freePort()];
      const nginxPort = await freePort();

      for (const mode of modes) {
        const dir = path.join(work, `${routing}-${mode}`);
        fs.mkdirSync(dir, { recursive: true });
        fs.chmodSync(dir, 0o755);
        const servers: Proc[] = [];
        for (const [i, port] of ports.entries()) {
          const p = await startTaskmoe({
            name: `taskmoe-${i}`,
            model,
            port,
            log: path.join(dir, `taskmoe-${i}.log`),
            lifetimeS: 600,
            workers: 1,
            cacheMb,
            env: { TASKMOE_WARM: 'none' },
          });
          servers.push(p);
          procs.push(p);
        }
        const confFile = path.join(dir, 'nginx.conf');
        fs.writeFileSync(confFile, nginxConfig(dir, nginxPort, mode, ports));
        execFileSync('nginx', ['-t', '-q', '-p', dir, '-c', confFile], { stdio: 'inherit' });
        const nginx = start('nginx', 'nginx', ['-p', dir, '-c', confFile, '-g', 'daemon off;'], {
          log: path.join(dir, 'nginx.log'),
          lifetimeS: 600,
        });
        procs.push(nginx);
        await waitFor('nginx', () => httpOk(`http://127.0.0.1:${nginxPort}/healthz`), 20000, nginx);

        console.log(`\n${routing} routing, ${MODES[mode].label}: ${total} requests, concurrency ${concurrency}`);
        const load = await runLoad({
          baseUrl: `http://127.0.0.1:${nginxPort}`,
          total,
          maxSeconds: Number(values['max-seconds']),
          concurrency,
          pickPair: (i) => sequence[i],
          maxLength: 8,
        });
        const perServer: number[] = [];
        const pairsPerServer: number[] = [];
        let hits = 0;
        let misses = 0;
        let evictions = 0;
        for (const port of ports) {
          const base = `http://127.0.0.1:${port}`;
          const m = await scrape(base, [
            'taskmoe_cache_hits_total',
            'taskmoe_cache_misses_total',
            'taskmoe_cache_evictions_total',
          ]);
          hits += m.taskmoe_cache_hits_total;
          misses += m.taskmoe_cache_misses_total;
          evictions += m.taskmoe_cache_evictions_total;
          const text = await (await fetch(`${base}/metrics`)).text();
          const reqs = [
            ...text.matchAll(/^taskmoe_requests_total\{route="\/translate\/:source\/:target",code="200"\} (\S+)/gm),
          ].reduce((a, x) => a + Number(x[1]), 0);
          perServer.push(reqs);
          pairsPerServer.push(
            new Set([...text.matchAll(/^taskmoe_batch_sentences_count\{pair="([^"]+)"\}/gm)].map((x) => x[1])).size,
          );
        }
        const r: ModeResult = {
          routing,
          mode,
          label: MODES[mode].label,
          requests: load.requests,
          ok: load.ok,
          errors: load.errors,
          seconds: load.seconds,
          throughput: load.ok / load.seconds,
          p50Ms: percentile(load.latenciesMs, 0.5),
          p99Ms: percentile(load.latenciesMs, 0.99),
          hits,
          misses,
          evictions,
          hitRatio: hits / (hits + misses),
          perServer,
          pairsPerServer,
        };
        results.push(r);
        console.log(
          `  ${r.ok}/${r.requests} ok in ${r.seconds.toFixed(1)} s: ${r.throughput.toFixed(1)} req/s, p50 ${r.p50Ms.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms; cache hit ratio ${(100 * r.hitRatio).toFixed(1)}% (${misses} loads, ${evictions} evictions); requests per server ${perServer.join('/')}, pairs per server ${pairsPerServer.join('/')}${Object.keys(r.errors).length ? `; errors ${JSON.stringify(r.errors)}` : ''}`,
        );
        await nginx.stop(5000);
        await Promise.all(servers.map((s) => s.stop(10000)));
        await sleep(500);
      }
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop(5000)));
    if (values.keep) console.log(`kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(
    '\n| decoder routing | balancing | cache hit ratio | loads | evictions | throughput (req/s) | p50 (ms) | p99 (ms) | requests per server | pairs per server |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${r.routing} | ${r.label} | ${(100 * r.hitRatio).toFixed(1)}% | ${r.misses} | ${r.evictions} | ${r.throughput.toFixed(1)} | ${r.p50Ms.toFixed(0)} | ${r.p99Ms.toFixed(0)} | ${r.perServer.join(' / ')} | ${r.pairsPerServer.join(' / ')} |`,
    );
  }
  if (values.json)
    fs.writeFileSync(values.json, JSON.stringify({ routings, requests: total, concurrency, dModel, results }, null, 2));
  return results.every((r) => r.ok > 0) ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`affinity-bench failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  },
);
