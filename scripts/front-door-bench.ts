// Benchmark (not a test) of the front door's cost, side by side in one run:
//   1. server throughput with API keys and quotas off against --api-keys with per-key limits high
//      enough never to refuse (every request: key lookup + one SQLite transaction), closed loop,
//      rounds interleaved, median round of each;
//   2. the guard's own cost per request (key lookup + quota transaction), timed alone.
//   3. with --profile DIR, the main thread's CPU profile (a sample every 250 µs) of every measured round (.cpuprofile files
//      in DIR) and the functions whose time per request differs most between off and on.
// Usage: node --import tsx scripts/front-door-bench.ts [--model DIR] [--seconds N] [--rounds N] [--concurrency N] [--profile DIR] [--control]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readCorpus, pairsFor } from '../src/data/corpus.ts';
import { createServer, type TaskmoeServer } from '../src/server/app.ts';
import { KeyStore, keyDbPath } from '../src/server/front-door/key-store.ts';
import { Limiter } from '../src/server/front-door/limiter.ts';
import { resolveSettings } from '../src/server/settings.ts';
import { median, percentile } from '../src/bench/stats.ts';
import { type CpuProfile, perRequestUs, profileDifference, startCpuProfile } from '../src/bench/cpu-profile.ts';
import { DEFAULT_MODEL_DIR } from '../src/translator/index.ts';
import { tempDir } from '../test/helpers/engine.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    concurrency: { type: 'string' },
    data: { type: 'string' },
    profile: { type: 'string' },
    control: { type: 'boolean' },
  },
});
const model = path.resolve(values.model ?? DEFAULT_MODEL_DIR);
const seconds = Number(values.seconds ?? 8);
const rounds = Number(values.rounds ?? 5);
const concurrency = Number(values.concurrency ?? 32);
const corpus = await readCorpus(path.resolve(values.data ?? '/work/shared/data/gettext-mt/dev'), {
  languages: ['en', 'de'],
  maxPerFile: 400,
});
const texts = pairsFor(corpus.files, { source: 'en', target: 'de' }).map((p) => p.source);

const dataDir = tempDir('front-door-bench-');
const base = { ...resolveSettings({}, {}), modelDir: model, workers: 1, warm: 'en-de', dataDir };
const off = await createServer(base);
// --control: the second server is the first's twin (keys off, no key sent), to see what the bench
// itself puts between two identical servers.
const on = await createServer(
  values.control ? base : { ...base, apiKeys: true, reqPerMinute: 1_000_000_000, charsPerDay: 1_000_000_000 },
);
await Promise.all([off.ready, on.ready]);
const admin = KeyStore.open(keyDbPath(dataDir));
const key = admin.add({ name: 'bench', reqPerMinute: 1_000_000_000, charsPerDay: 1_000_000_000 }).key;
const onKey = values.control ? undefined : key;

interface Round {
  requestsPerSecond: number;
  /** Process CPU time (all threads: HTTP, batcher, engine worker, this client) per answered request. */
  cpuMsPerRequest: number;
  /** The main thread's busy time (event loop: HTTP, validation, the guard, batcher) per answered request. */
  mainMsPerRequest: number;
  p50Ms: number;
  p99Ms: number;
  answered: number;
  /** Mean sentences per engine batch (the server's taskmoe_batch_sentences histogram over the round). */
  sentencesPerBatch: number;
  /** The main thread's profile of the measured stretch (with --profile). */
  profile?: CpuProfile;
}

/** The batch-size histogram's running count and sum. */
async function batches(server: TaskmoeServer): Promise<{ count: number; sum: number }> {
  const { values: v } = await server.metrics.batchSentences.get();
  const total = (suffix: string) =>
    v.filter((x) => x.metricName === `taskmoe_batch_sentences_${suffix}`).reduce((n, x) => n + x.value, 0);
  return { count: total('count'), sum: total('sum') };
}

/** Closed loop over inject(): `concurrency` clients, each one text per request. */
async function load(server: TaskmoeServer, apiKey?: string, url = '/translate'): Promise<Round> {
  const warmUntil = performance.now() + 2000;
  let from = Infinity;
  let end = Infinity;
  let answered = 0;
  let cpuFrom = process.cpuUsage();
  let eluFrom = performance.eventLoopUtilization();
  let next = 0;
  const latencies: number[] = [];
  let profiling: Promise<() => Promise<CpuProfile>> | undefined;
  // The profile runs until the last client is done: it covers every answer after the warm-up.
  let profiled = 0;
  let batchesFrom = batches(server);
  const client = async () => {
    while (performance.now() < end) {
      const q = texts[next++ % texts.length];
      const sent = performance.now();
      const res = await server.app.inject({
        method: 'POST',
        url,
        payload: { q, source: 'en', target: 'de', ...(apiKey ? { api_key: apiKey } : {}) },
      });
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${res.body}`);
      const now = performance.now();
      if (from === Infinity && now >= warmUntil) {
        from = now;
        end = from + seconds * 1000;
        cpuFrom = process.cpuUsage();
        eluFrom = performance.eventLoopUtilization();
        batchesFrom = batches(server);
        if (values.profile !== undefined) profiling = startCpuProfile(250);
      } else if (now > from) profiled++;
      if (now > from && now <= end) {
        answered++;
        latencies.push(now - sent);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const cpu = process.cpuUsage(cpuFrom);
  const main = performance.eventLoopUtilization(eluFrom);
  const [b0, b1] = [await batchesFrom, await batches(server)];
  const profile = profiling === undefined ? undefined : await (await profiling)();
  return {
    answered: profiled,
    sentencesPerBatch: (b1.sum - b0.sum) / (b1.count - b0.count),
    profile,
    requestsPerSecond: answered / seconds,
    cpuMsPerRequest: (cpu.user + cpu.system) / 1000 / answered,
    mainMsPerRequest: main.active / answered,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

console.log(
  `front door bench: ${model}, en-de, ${concurrency} in flight, ${seconds} s x ${rounds} rounds (interleaved), 1 engine worker each${values.control ? '; CONTROL: the "on" server is a twin with keys off' : ''}`,
);
const rounds_ = { off: [] as Round[], on: [] as Round[] };
for (let r = 1; r <= rounds; r++) {
  // Alternate which goes first, so that neither always follows the other.
  const order = r % 2 === 1 ? (['off', 'on'] as const) : (['on', 'off'] as const);
  for (const which of order) rounds_[which].push(which === 'off' ? await load(off) : await load(on, onKey));
  const f = (x: Round) =>
    `${x.requestsPerSecond.toFixed(1)} req/s, p50 ${x.p50Ms.toFixed(0)} ms, p99 ${x.p99Ms.toFixed(0)} ms, ${x.cpuMsPerRequest.toFixed(2)} CPU ms/req (main thread ${x.mainMsPerRequest.toFixed(2)}), ${x.sentencesPerBatch.toFixed(1)} sentences/batch`;
  console.log(`round ${r}: off ${f(rounds_.off.at(-1)!)}  on ${f(rounds_.on.at(-1)!)}`);
}
const med = (xs: Round[], k: Exclude<keyof Round, 'profile'>) => median(xs.map((x) => x[k]));
const [mOff, mOn] = [med(rounds_.off, 'requestsPerSecond'), med(rounds_.on, 'requestsPerSecond')];
const [cOff, cOn] = [med(rounds_.off, 'cpuMsPerRequest'), med(rounds_.on, 'cpuMsPerRequest')];
const [tOff, tOn] = [med(rounds_.off, 'mainMsPerRequest'), med(rounds_.on, 'mainMsPerRequest')];
// Each round's on/off pair ran back to back: the median of their ratios cancels the machine's drift between rounds.
const pairedRatio = (runs: { off: Round[]; on: Round[] }) =>
  median(runs.on.map((x, i) => x.requestsPerSecond / runs.off[i].requestsPerSecond));
console.log(`throughput, median of the rounds' on/off ratios: ${pairedRatio(rounds_).toFixed(4)}`);
console.log(
  `throughput, median round: keys+quotas off ${mOff.toFixed(1)} req/s, on ${mOn.toFixed(1)} req/s, ratio on/off ${(mOn / mOff).toFixed(4)}`,
);
const lat = (k: 'p50Ms' | 'p99Ms') =>
  `off ${med(rounds_.off, k).toFixed(0)} ms, on ${med(rounds_.on, k).toFixed(0)} ms, ratio on/off ${(med(rounds_.on, k) / med(rounds_.off, k)).toFixed(4)}`;
console.log(`latency p50, median round: ${lat('p50Ms')}; p99: ${lat('p99Ms')}`);
console.log(
  `CPU per request, median round: off ${cOff.toFixed(2)} ms, on ${cOn.toFixed(2)} ms, ratio on/off ${(cOn / cOff).toFixed(4)}`,
);
console.log(
  `sentences per engine batch, median round: off ${med(rounds_.off, 'sentencesPerBatch').toFixed(2)}, on ${med(rounds_.on, 'sentencesPerBatch').toFixed(2)}`,
);
console.log(
  `main thread busy per request, median round: off ${tOff.toFixed(3)} ms, on ${tOn.toFixed(3)} ms, difference ${((tOn - tOff) * 1000).toFixed(0)} us`,
);

// The same on /detect, which does no engine work (a light request: the guard's share is largest).
const detect = { off: [] as Round[], on: [] as Round[] };
for (let r = 1; r <= rounds; r++) {
  const order = r % 2 === 1 ? (['off', 'on'] as const) : (['on', 'off'] as const);
  for (const which of order)
    detect[which].push(which === 'off' ? await load(off, undefined, '/detect') : await load(on, onKey, '/detect'));
}
const [dOff, dOn] = [med(detect.off, 'requestsPerSecond'), med(detect.on, 'requestsPerSecond')];
console.log(
  `/detect (no engine work), median round: off ${dOff.toFixed(0)} req/s, on ${dOn.toFixed(0)} req/s, ratio on/off ${(dOn / dOff).toFixed(4)}; median of the rounds' ratios ${pairedRatio(detect).toFixed(4)}`,
);
await Promise.all([off.shutdown(), on.shutdown()]);
if (values.profile !== undefined) reportProfiles(values.profile);

// The guard's work alone: the key lookup and the quota check of one request, for a busy client
// (admitted from its slice in memory, a transaction every 1% of the limit) and for a transaction
// on every request (what a limit under 100 a minute costs, and what the guard did before slices).
const n = 20_000;
const limits = { reqPerMinute: 1_000_000_000, charsPerDay: 1_000_000_000 };
const guardAlone = (limiter: Limiter, client: string) => {
  const samples: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      admin.limitsOf(key);
      limiter.admit(client, limits, 40);
    }
    samples.push(((performance.now() - t0) * 1000) / n);
  }
  limiter.close();
  return median(samples);
};
const guardUs = guardAlone(new Limiter(admin.db), `key:${key}`);
const everyRequestUs = guardAlone(new Limiter(admin.db, Date.now, 0), 'bench:every-request');
console.log(
  `guard alone (key lookup + quota; WAL, synchronous=NORMAL), median over 5 x ${n}: ${guardUs.toFixed(1)} us per request from a slice, ${everyRequestUs.toFixed(1)} us with a transaction every request`,
);
console.log(
  `guard / CPU per request with keys off: ${((guardUs / 1000 / cOff) * 100).toFixed(3)}% from a slice, ${((everyRequestUs / 1000 / cOff) * 100).toFixed(3)}% with a transaction every request`,
);
admin.close();

/** Writes each round's profile and prints where keys on spends main-thread time that keys off does not. */
function reportProfiles(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [route, runs] of [
    ['translate', rounds_],
    ['detect', detect],
  ] as const) {
    const per = (which: 'off' | 'on') => {
      runs[which].forEach((r, i) =>
        fs.writeFileSync(path.join(dir, `${route}-${which}-${i + 1}.cpuprofile`), JSON.stringify(r.profile)),
      );
      const requests = runs[which].reduce((n, r) => n + r.answered, 0);
      return perRequestUs(
        runs[which].map((r) => r.profile!),
        requests,
      );
    };
    console.log(`\n/${route}: main-thread CPU profile, µs per request, a = keys off, b = keys on, all rounds`);
    console.log(profileDifference(per('off'), per('on')));
  }
}
