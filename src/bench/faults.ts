// `taskmoe bench faults`: a bounded probe of the hardening (issue 12) on loopback, printing the
// Measures table: requests tried per class and their status counts, answers wrong or swapped, the
// heavy-request probe's p50/p99 against idle, RSS around the most expensive allowed request, the
// time from SIGTERM to exit (default and 2 s grace) and from a worker crash to its lane ready.
import * as http from 'node:http';
import * as net from 'node:net';
import { createServer, type TaskmoeServer } from '../server/app.ts';
import { resolveSettings } from '../server/settings.ts';
import { DEFAULT_MODEL_DIR } from '../translator/index.ts';
import { fuzzByteBodies, fuzzJsonBodies } from './fuzz.ts';
import { sleep } from './load.ts';
import { startServerProcess } from './server-process.ts';
import { median, percentile } from './stats.ts';

export interface FaultBenchOptions {
  model?: string;
  workers?: number;
  log?: (line: string) => void;
}

type Counts = Record<string, number>;
const count = (c: Counts, status: number) => void (c[status] = (c[status] ?? 0) + 1);
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

/** A source of about `tokens` tokens for the demo vocabulary (the issue's ~95-token texts). */
function longText(i: number, words = 60): string {
  const base = 'the file could not be saved because the disk is full please close other programs and try again'.split(
    ' ',
  );
  return Array.from({ length: words }, (_, k) => base[(k + i) % base.length]).join(' ');
}

/** The JSON of an answer, as far as the probe reads it. */
interface Answer {
  translatedText?: string;
  error?: string;
}

function post(
  port: number,
  body: unknown,
): Promise<{ status: number; json: Answer; headers: http.IncomingHttpHeaders; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      { port, host: '127.0.0.1', method: 'POST', path: '/translate', headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json: Answer = {};
          try {
            json = JSON.parse(text) as Answer;
          } catch {
            /* not JSON: an empty answer */
          }
          resolve({ status: res.statusCode ?? 0, json, headers: res.headers, ms: performance.now() - t0 });
        });
      },
    );
    req.on('error', () => resolve({ status: 0, json: {}, headers: {}, ms: performance.now() - t0 }));
    req.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
}

/** Milliseconds from SIGTERM to exit of a `taskmoe serve` child under beam load. */
async function sigtermMs(model: string, extra: string[]): Promise<{ ms: number; statuses: Counts }> {
  const child = await startServerProcess({
    model,
    args: ['--workers', '2', '--max-client-cost', '100000000', ...extra],
  });
  const load = Array.from({ length: 8 }, (_, i) =>
    post(child.port, {
      q: Array.from({ length: 24 }, (_, k) => longText(i + k, 30)),
      source: 'en',
      target: i % 2 ? 'de' : 'es',
      beam_size: 8,
      max_length: 48,
    }),
  );
  await sleep(1000);
  const t0 = performance.now();
  child.child.kill('SIGTERM');
  const answers = await Promise.all(load);
  await child.exited;
  const statuses: Counts = {};
  for (const a of answers) count(statuses, a.status);
  if (answers.some((a) => a.status === 0)) throw new Error(`sigterm run: connections reset\n${child.output()}`);
  return { ms: performance.now() - t0, statuses };
}

export async function benchFaults(opts: FaultBenchOptions = {}): Promise<void> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const model = opts.model ?? DEFAULT_MODEL_DIR;
  const rows: [string, string, string][] = [];
  const classes: [string, number, Counts][] = [];
  let wrong = 0;

  const settings = {
    ...resolveSettings({}, {}),
    modelDir: model,
    workers: opts.workers ?? 2,
    maxQueuedSentences: 64,
    port: 0,
    host: '127.0.0.1',
  };
  const server: TaskmoeServer = await createServer(settings, () => {});
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (server.app.server.address() as net.AddressInfo).port;
  await server.ready;
  try {
    // Fuzzed bodies.
    const fuzz: Counts = {};
    for (const body of [...fuzzJsonBodies(160, 7), ...fuzzByteBodies(40, 8)])
      count(fuzz, (await post(port, body)).status);
    classes.push(['fuzzed bodies', 200, fuzz]);

    // Overload with a small queue (--max-queue 64), answers checked against each text alone.
    const sentences = Array.from({ length: 20 }, (_, i) => `Could not open the file number ${i}`);
    const alone = new Map<string, string>();
    for (const s of sentences)
      alone.set(s, (await post(port, { q: s, source: 'en', target: 'de' })).json.translatedText ?? '');
    const overload: Counts = {};
    const burst = await Promise.all(
      Array.from({ length: 256 }, (_, i) =>
        post(port, { q: sentences[i % 20], source: 'en', target: 'de' }).then((r) => ({ r, q: sentences[i % 20] })),
      ),
    );
    for (const { r, q } of burst) {
      count(overload, r.status);
      if (r.status === 200 && r.json.translatedText !== alone.get(q)) wrong++;
    }
    classes.push(['overload, concurrency 256, --max-queue 64', 256, overload]);

    // The issue's heavy request: over the cost limit now.
    const heavyBody = {
      q: Array.from({ length: 128 }, (_, i) => longText(i)),
      source: 'en',
      target: 'de',
      beam_size: 8,
      alternatives: 4,
      max_length: 96,
    };
    const over = await post(port, heavyBody);
    classes.push([
      'heavy request of the issue (128 texts, beam 8, alternatives 4, max_length 96)',
      1,
      { [over.status]: 1 },
    ]);

    // The most expensive allowed request, and a probe of another pair on the same worker.
    const heavyPair = 'en-de';
    const worker = server.pool.homeOf(heavyPair);
    const probePair =
      server.pool.pairsOf(worker).find((p) => !p.endsWith('-de')) ??
      server.pool.pairsOf(worker).find((p) => p !== heavyPair)!;
    const [ps, pt] = probePair.split('-');
    const probe = () => post(port, { q: 'Could not open file', source: ps, target: pt });
    const idle: number[] = [];
    for (let i = 0; i < 30; i++) idle.push((await probe()).ms);
    const maxTexts = Math.floor(settings.maxRequestCost / (8 * 96));
    const allowed = { ...heavyBody, q: heavyBody.q.slice(0, maxTexts) };
    const rssBefore = rssMiB();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB())), 50);
    let heavyDone = false;
    const heavyStart = performance.now();
    const heavy = post(port, allowed).then((r) => ((heavyDone = true), r));
    const loaded: number[] = [];
    const probeCounts: Counts = {};
    await sleep(200);
    while (!heavyDone) {
      const r = await probe();
      // A probe that ended after the heavy request is neither timed nor counted.
      if (heavyDone) break;
      count(probeCounts, r.status);
      loaded.push(r.ms);
    }
    const heavyResult = await heavy;
    const heavyMs = performance.now() - heavyStart;
    clearInterval(sampler);
    await sleep(2000);
    const rssAfter = rssMiB();
    classes.push([
      `most expensive allowed request (${maxTexts} texts, beam 8, alternatives 4, max_length 96)`,
      1,
      { [heavyResult.status]: 1 },
    ]);
    classes.push([`probes of ${probePair} during it (same worker)`, loaded.length, probeCounts]);
    rows.push([
      `probe ${probePair} latency idle, p50 / p99`,
      `${median(idle).toFixed(0)} / ${percentile(idle, 0.99).toFixed(0)} ms`,
      '30 sequential probes, idle server',
    ]);
    rows.push([
      `probe ${probePair} latency during the heavy ${heavyPair} request, p50 / p99`,
      `${median(loaded).toFixed(0)} / ${percentile(loaded, 0.99).toFixed(0)} ms`,
      `${loaded.length} sequential probes over its ${(heavyMs / 1000).toFixed(1)} s; p99 ${(percentile(loaded, 0.99) / percentile(idle, 0.99)).toFixed(2)}x idle p99`,
    ]);
    rows.push([
      'RSS before / peak / after the most expensive allowed request',
      `${rssBefore.toFixed(0)} / ${rssPeak.toFixed(0)} / ${rssAfter.toFixed(0)} MiB`,
      'whole process (server thread and engine workers), sampled every 50 ms',
    ]);

    // Worker crashes under load: time from each crash to its lane ready, answers checked.
    const crash: Counts = {};
    const readyMs: number[] = [];
    let stop = false;
    const loadLoop = (async () => {
      while (!stop) {
        const q = sentences[Math.floor(Math.random() * 20)];
        const r = await post(port, { q, source: 'en', target: 'de' });
        count(crash, r.status);
        if (r.status === 200 && r.json.translatedText !== alone.get(q)) wrong++;
        if (r.status === 503 && r.headers['retry-after'] === undefined) count(crash, -503);
      }
    })();
    for (let i = 0; i < 5; i++) {
      await sleep(300);
      const t0 = performance.now();
      await server.pool.crashWorker(worker);
      while (server.pool.health()[worker].status !== 'ready') await sleep(5);
      readyMs.push(performance.now() - t0);
    }
    stop = true;
    await loadLoop;
    classes.push(['requests during 5 worker crashes', Object.values(crash).reduce((a, b) => a + b, 0), crash]);
    rows.push([
      'worker crash to its lane ready, median (max) of 5',
      `${median(readyMs).toFixed(0)} (${Math.max(...readyMs).toFixed(0)}) ms`,
      'restart, model load and warm-up of its pairs',
    ]);

    // Slow bodies: a byte every 500 ms against --request-timeout-ms.
    const slow: Counts = {};
    await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<void>((resolve) => {
            const s = net.connect(port, '127.0.0.1');
            let reply = '';
            s.on('data', (d) => (reply += d));
            s.on('error', () => {});
            s.write(
              'POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
            );
            const drip = setInterval(() => s.writable && s.write(' '), 500);
            const give = setTimeout(() => s.destroy(), settings.requestTimeoutMs + 10_000);
            s.on('close', () => {
              clearInterval(drip);
              clearTimeout(give);
              count(slow, Number(/^HTTP\/1\.1 (\d+)/.exec(reply)?.[1] ?? 0));
              resolve();
            });
          }),
      ),
    );
    classes.push([`slow bodies, a byte every 500 ms (--request-timeout-ms ${settings.requestTimeoutMs})`, 20, slow]);
  } finally {
    await server.shutdown();
  }

  const byDefault = await sigtermMs(model, []);
  const short = await sigtermMs(model, ['--drain-grace-ms', '2000']);
  rows.push([
    'SIGTERM to exit, default grace (20 s), beam work in flight',
    `${(byDefault.ms / 1000).toFixed(1)} s`,
    `answers ${JSON.stringify(byDefault.statuses)}`,
  ]);
  rows.push([
    'SIGTERM to exit, --drain-grace-ms 2000, beam work in flight',
    `${(short.ms / 1000).toFixed(1)} s`,
    `answers ${JSON.stringify(short.statuses)}`,
  ]);

  log('| class | requests | status counts |');
  log('|---|---:|---|');
  for (const [name, n, counts] of classes)
    log(
      `| ${name} | ${n} | ${Object.entries(counts)
        .map(([s, c]) => `${s === '-503' ? '503 without Retry-After' : s}: ${c}`)
        .join(', ')} |`,
    );
  log('');
  log('| measure | value | notes |');
  log('|---|---|---|');
  log(
    `| answers wrong or swapped | ${wrong} | overload and crash classes, each answer against its text translated alone |`,
  );
  for (const [m, v, n] of rows) log(`| ${m} | ${v} | ${n} |`);
}
