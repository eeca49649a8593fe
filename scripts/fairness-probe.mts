// Fairness probe (issue 12, item 2): a short en-es request's latency on an idle server, then while the
// most expensive request the default limits allow (42 texts x beam 8 x 96 tokens, cost 32,256 of
// --max-request-cost 32,768) of another pair runs on the same engine worker. Prints p50/p99 of each
// and their ratio. Default settings except --timeout-ms (so the heavy request finishes).
// The first requests after start are slow (cold code paths), so 3 probes are taken and shown first;
// --preheat also sends one small beam request of the heavy pair before measuring.
// --busy-other sends the same heavy request of a pair whose home is the other worker at the same time (with
// --no-replicas: both workers decode, as with a replica, but the probe's pair never leaves its worker).
// /work/wt/bench.sh env TASKMOE_BACKEND=wasm node --import tsx scripts/fairness-probe.mts [--preheat] [--no-replicas] [--busy-other]
import { createServer } from '../src/server/app.ts';
import { resolveSettings } from '../src/server/settings.ts';
import { percentile as quantile } from '../src/bench/stats.ts';

// --no-replicas (max-replicas 1) keeps every en-es probe on the heavy request's worker: with replicas
// the pool may place en-es on the other worker once it is busy, and the probes go there.
const s = {
  ...resolveSettings({}, {}),
  workers: 2,
  timeoutMs: 600_000,
  ...(process.argv.includes('--no-replicas') ? { maxReplicas: 1 } : {}),
};
let t0 = performance.now();
const at = () => ((performance.now() - t0) / 1000).toFixed(2);
// The pool's log (replica loads) with the time since the heavy request was sent.
const server = await createServer(s, (msg) => console.log(`${at()} s: ${msg}`));
await server.ready;
const probePair = 'en-es';
const heavyPair = server.pool
  .pairsOf(server.pool.homeOf(probePair))
  .find((p) => p !== probePair && p.startsWith('en-'))!;
const [, heavyTarget] = heavyPair.split('-');
console.log(`probe ${probePair} and heavy ${heavyPair}, both on engine worker ${server.pool.homeOf(probePair)}`);
const base = 'the file could not be saved because the disk is full please close other programs and try again'.split(
  ' ',
);
const longText = (i: number) => Array.from({ length: 60 }, (_, k) => base[(k + i) % base.length]).join(' ');
const probe = async () => {
  const p0 = performance.now();
  const r = await server.app.inject({
    method: 'POST',
    url: '/translate',
    payload: { q: 'Could not open file', source: 'en', target: 'es' },
    remoteAddress: '10.0.0.9',
  });
  if (r.statusCode !== 200) throw new Error(`probe answered ${r.statusCode}: ${r.body}`);
  return performance.now() - p0;
};
const firsts: number[] = [];
for (let i = 0; i < 3; i++) firsts.push(await probe());
console.log(`first 3 probes after start: ${firsts.map((x) => x.toFixed(0)).join(', ')} ms`);
if (process.argv.includes('--preheat')) {
  const p0 = performance.now();
  await server.app.inject({
    method: 'POST',
    url: '/translate',
    payload: { q: [longText(0)], source: 'en', target: heavyTarget, beam_size: 8, alternatives: 4, max_length: 96 },
  });
  console.log(`preheat: one ${heavyPair} text at beam 8 in ${(performance.now() - p0).toFixed(0)} ms`);
}
const idle: number[] = [];
for (let i = 0; i < 100; i++) idle.push(await probe());
t0 = performance.now();
let done = false;
const heavyRequest = (target: string) =>
  server.app.inject({
    method: 'POST',
    url: '/translate',
    payload: {
      q: Array.from({ length: 42 }, (_, i) => longText(i)),
      source: 'en',
      target,
      beam_size: 8,
      alternatives: 4,
      max_length: 96,
    },
  });
if (process.argv.includes('--busy-other')) {
  const other = server.pool.pairsOf(server.pool.homeOf(probePair) === 0 ? 1 : 0).find((p) => p.startsWith('en-'))!;
  console.log(`also heavy ${other} on engine worker ${server.pool.homeOf(other)}`);
  void heavyRequest(other.split('-')[1]);
}
const cpu0 = process.cpuUsage();
const heavy = heavyRequest(heavyTarget).then((r) => {
  done = true;
  console.log(`heavy ${r.statusCode} after ${at()} s`);
});
await new Promise((r) => setTimeout(r, 200));
const loaded: number[] = [];
while (!done) {
  const ms = await probe();
  loaded.push(ms);
  if (loaded.length <= 3 || ms > 1000)
    console.log(`loaded probe ${loaded.length}: ${ms.toFixed(0)} ms, ended at ${at()} s`);
}
await heavy;
const cpu = process.cpuUsage(cpu0);
const cores = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
// On a shared host the process may get less than its busy threads need: the probe's worker then waits for a core.
console.log(
  `process CPU while loaded: ${cores.toFixed(2)} cores; replicas at the end: ${JSON.stringify(
    Object.fromEntries([probePair, heavyPair].map((p) => [p, server.pool.workersOf(p)])),
  )}`,
);
await server.shutdown();
const fmt = (xs: number[]) =>
  `p50 ${quantile(xs, 0.5).toFixed(0)} ms, p99 ${quantile(xs, 0.99).toFixed(0)} ms (n=${xs.length})`;
console.log(`idle:   ${fmt(idle)}`);
console.log(`loaded: ${fmt(loaded)}`);
console.log(
  `p99 loaded / p99 idle = ${(quantile(loaded, 0.99) / quantile(idle, 0.99)).toFixed(2)}; p50 ratio ${(quantile(loaded, 0.5) / quantile(idle, 0.5)).toFixed(2)}`,
);
