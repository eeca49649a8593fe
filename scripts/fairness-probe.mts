// Fairness probe (issue 12, item 2): idle probe latency, then sequential probes of en-es while a 42-text beam-8 en-de request runs on the same worker.
// TASKMOE_BACKEND=wasm node --import tsx scripts/fairness-probe.mts
import { createServer } from '../src/server/app.ts';
import { resolveSettings } from '../src/server/settings.ts';
const s = { ...resolveSettings({}, {}), workers: 2, maxQueuedSentences: 64, timeoutMs: 120000 };
const server = await createServer(s, () => {});
await server.ready;
const base = 'the file could not be saved because the disk is full please close other programs and try again'.split(' ');
const longText = (i: number) => Array.from({ length: 60 }, (_, k) => base[(k + i) % base.length]).join(' ');
const idle: number[] = [];
for (let i = 0; i < 10; i++) { const p0 = performance.now(); await server.app.inject({ method: 'POST', url: '/translate', payload: { q: 'Could not open file', source: 'en', target: 'es' } }); idle.push(performance.now() - p0); }
console.log('idle', idle.map((x) => x.toFixed(0)).join(' '));
console.log('en-de worker', server.pool.homeOf('en-de'), 'en-es worker', server.pool.homeOf('en-es'));
const t0 = performance.now();
const at = () => ((performance.now() - t0) / 1000).toFixed(2);
let done = false;
const heavy = server.app.inject({ method: 'POST', url: '/translate', payload: { q: Array.from({ length: 42 }, (_, i) => longText(i)), source: 'en', target: 'de', beam_size: 8, alternatives: 4, max_length: 96 } }).then((r) => { done = true; console.log('heavy', r.statusCode, at()); });
await new Promise((r) => setTimeout(r, 200));
while (!done) {
  const p0 = performance.now();
  const r = await server.app.inject({ method: 'POST', url: '/translate', payload: { q: 'Could not open file', source: 'en', target: 'es' }, remoteAddress: '10.0.0.9' });
  console.log('probe', r.statusCode, ((performance.now() - p0)).toFixed(0), 'ms at', at());
}
await heavy;
await server.shutdown();
