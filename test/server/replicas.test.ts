// Replicas of a busy sub-network on several engine workers: the placement rule on exact figures,
// and a real server whose one hot pair spreads over two workers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import {
  BusyMeter,
  type ReplicaThresholds,
  type SubnetworkLoad,
  type WorkerLoad,
  planReplica,
} from '../../src/server/replicas.ts';
import { batchKeyOf } from '../../src/server/request.ts';
import { resolveSettings, type ServerSettings } from '../../src/server/settings.ts';
import { randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { expectServerBackend, metric } from '../helpers/server.ts';

const T: ReplicaThresholds = { busyRatio: 0.75, waitMs: 250, maxReplicas: 8, maxCpuPressure: 0.1 };
const SIZES = new Map([
  ['embeddings', 100],
  ['encoder:*', 300],
  ['decoder:de', 200],
  ['decoder:fr', 200],
]);
const DE = ['embeddings', 'encoder:*', 'decoder:de'];

function sub(over: Partial<SubnetworkLoad>): SubnetworkLoad {
  return { id: 'de', entries: DE, replicas: [0], busyRatio: 0, meanWaitMs: 0, ...over };
}

function worker(index: number, over: Partial<WorkerLoad> = {}): WorkerLoad {
  return { index, busyRatio: 0, freeBytes: 1000, holds: new Set(), ...over };
}

describe('planReplica', () => {
  test('a sub-network below both thresholds gets no replica; past either one it does, on an idle worker', () => {
    const workers = [worker(0, { busyRatio: 0.7, holds: new Set(DE) }), worker(1)];
    assert.equal(planReplica([sub({ busyRatio: 0.74, meanWaitMs: 249 })], workers, SIZES, T), undefined);
    assert.deepEqual(planReplica([sub({ busyRatio: 0.75 })], workers, SIZES, T), {
      subnetwork: 'de',
      worker: 1,
      reason: 'busy 75% >= 75%',
    });
    assert.deepEqual(planReplica([sub({ meanWaitMs: 250 })], workers, SIZES, T), {
      subnetwork: 'de',
      worker: 1,
      reason: 'mean queue wait 250 ms >= 250 ms',
    });
  });

  test('only where the cache has room for the entries the worker lacks', () => {
    const hot = [sub({ busyRatio: 1 })];
    assert.equal(planReplica(hot, [worker(0), worker(1, { freeBytes: 599 })], SIZES, T), undefined, 'needs 600 bytes');
    assert.equal(planReplica(hot, [worker(0), worker(1, { freeBytes: 600 })], SIZES, T)?.worker, 1);
    // Holding the shared encoder and embeddings, the worker needs only the decoder's 200 bytes.
    const holdsShared = worker(1, { freeBytes: 200, holds: new Set(['embeddings', 'encoder:*', 'decoder:fr']) });
    assert.equal(planReplica(hot, [worker(0), holdsShared], SIZES, T)?.worker, 1);
    // An entry whose size was never seen: no guess.
    assert.equal(
      planReplica(
        [sub({ busyRatio: 1, entries: ['embeddings', 'encoder:*', 'decoder:ja'] })],
        [worker(0), worker(1)],
        SIZES,
        T,
      ),
      undefined,
    );
  });

  test('the least busy worker that lacks it and is below the threshold; never past maxReplicas', () => {
    const hot = sub({ busyRatio: 0.9, replicas: [0] });
    const workers = [
      worker(0, { busyRatio: 0.9 }),
      worker(1, { busyRatio: 0.5 }),
      worker(2, { busyRatio: 0.2 }),
      worker(3, { busyRatio: 0.8 }),
    ];
    assert.equal(planReplica([hot], workers, SIZES, T)?.worker, 2);
    assert.equal(planReplica([{ ...hot, replicas: [0, 2] }], workers, SIZES, T)?.worker, 1);
    assert.equal(
      planReplica([{ ...hot, replicas: [0, 2, 1] }], workers, SIZES, T),
      undefined,
      'worker 3 is past the busy threshold itself',
    );
    assert.equal(planReplica([hot], workers, SIZES, { ...T, maxReplicas: 1 }), undefined);
  });

  test("none while the host's threads wait for a CPU past maxCpuPressure (unknown pressure: not checked)", () => {
    const hot = [sub({ busyRatio: 1 })];
    const workers = [worker(0, { busyRatio: 1 }), worker(1)];
    assert.equal(planReplica(hot, workers, SIZES, T, 0.11), undefined);
    assert.equal(planReplica(hot, workers, SIZES, T, 0.1)?.worker, 1);
    assert.equal(planReplica(hot, workers, SIZES, T, undefined)?.worker, 1);
    assert.equal(planReplica(hot, workers, SIZES, { ...T, maxCpuPressure: 1 }, 1)?.worker, 1, '100%: off');
  });

  test('the hottest sub-network goes first', () => {
    const fr = sub({ id: 'fr', entries: ['embeddings', 'encoder:*', 'decoder:fr'], busyRatio: 0.95 });
    assert.equal(planReplica([sub({ busyRatio: 0.8 }), fr], [worker(0), worker(1)], SIZES, T)?.subnetwork, 'fr');
  });
});

test('BusyMeter: a key is busy while any batch of it runs, counted up to the window end', () => {
  let now = 0;
  const meter = new BusyMeter(() => now);
  meter.start('w0');
  now = 10;
  meter.start('w0'); // overlapping batches count once
  now = 30;
  meter.end('w0');
  now = 40;
  meter.end('w0');
  meter.start('w1');
  now = 100;
  assert.deepEqual(
    meter.take(),
    new Map([
      ['w0', 40],
      ['w1', 60],
    ]),
  );
  now = 150;
  meter.end('w1');
  assert.deepEqual(meter.take(), new Map([['w1', 50]]));
});

const cfg = tinyConfig('token', 'target');
let modelDir: string;
before(async () => {
  await useTestBackend();
  modelDir = await randomCheckpoint(cfg, 11);
});

function settings(over: Partial<ServerSettings>): ServerSettings {
  return { ...resolveSettings({}, {}), modelDir, warm: 'all', maxBatchSentences: 8, replicaWindowMs: 300, ...over };
}

/** A server whose replica placement sees `cpuPressure` (default none), whatever the host's. */
async function start(over: Partial<ServerSettings>, cpuPressure = 0): Promise<TaskmoeServer> {
  const server = await createServer(settings(over));
  server.pool.cpuPressure = () => cpuPressure;
  await expectServerBackend(server);
  return server;
}

const TEXTS = [
  'Could not open file',
  'Save as',
  'The file %s already exists.',
  'Quit',
  'Print the document',
  'Unknown option: --verbose',
];

/** `rounds` rounds of 24 concurrent en-de requests of one text each; every answer must be 200. */
async function hammer(server: TaskmoeServer, rounds: number): Promise<Map<string, string>> {
  const answers = new Map<string, string>();
  for (let r = 0; r < rounds; r++) {
    await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const q = TEXTS[(i + r) % TEXTS.length];
        const res = await server.app.inject({
          method: 'POST',
          url: '/translate',
          payload: { q, source: 'en', target: 'de', max_length: 40 },
        });
        assert.equal(res.statusCode, 200, res.body);
        answers.set(q, res.json().translatedText);
      }),
    );
  }
  return answers;
}

/** Which worker ran each en-de batch the batcher sent. */
function spyOnWorkers(server: TaskmoeServer): number[] {
  const workers: number[] = [];
  const run = server.pool.run.bind(server.pool);
  server.pool.run = (key, sources, signal, w) => {
    if (key.pair === 'en-de') workers.push(w ?? -1);
    return run(key, sources, signal, w);
  };
  return workers;
}

describe('a hot pair on a two-worker server', () => {
  let single: TaskmoeServer;
  let expected: Map<string, string>;
  before(async () => {
    single = await start({ workers: 1 });
    expected = await hammer(single, 1);
  });
  after(() => single.shutdown());

  test("gets a replica on the other worker, both workers decode its batches, the answers are the single worker's, and no tensor leaks", async () => {
    // Windows close when the test says (rebalance()), so what falls in each is known.
    const server = await start({ workers: 2, replicaWindowMs: 3_600_000 });
    try {
      const home = server.pool.homeOf('en-de');
      const series = [
        ...(await server.metrics.registry.metrics()).matchAll(/taskmoe_subnetwork_replicas\{subnetwork="([^"]+)"\}/g),
      ];
      assert.equal(series.length, 4, 'one series per sub-network (one decoder per target language)');
      assert.equal(await metric(server, 'taskmoe_subnetwork_replicas'), 4, 'each starts on one worker');
      const ran = spyOnWorkers(server);
      // Light load: a few requests one at a time (the first decode of a worker is slow), over a window
      // long enough that the worker was busy well under 75% of it.
      const light = Date.now();
      for (const q of TEXTS)
        assert.equal(
          (
            await server.app.inject({
              method: 'POST',
              url: '/translate',
              payload: { q, source: 'en', target: 'de', max_length: 8 },
            })
          ).statusCode,
          200,
        );
      await new Promise((r) => setTimeout(r, Math.max(0, 4 * (Date.now() - light))));
      server.pool.rebalance();
      assert.ok(server.pool.busy()[home] < 0.75, `busy ${server.pool.busy()[home]}`);
      assert.deepEqual(server.pool.workersOf('en-de'), [home], 'below the thresholds: no replica');
      assert.ok(ran.length >= 6 && ran.every((w) => w === home), 'every batch ran on the home worker');
      // Saturation: past the busy threshold, the sub-network is loaded on the idle worker.
      await hammer(server, 3);
      server.pool.rebalance();
      assert.ok(server.pool.busy()[home] >= 0.75, `busy ${server.pool.busy()[home]}`);
      for (let i = 0; i < 100 && server.pool.workersOf('en-de').length < 2; i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual([...server.pool.workersOf('en-de')].sort(), [0, 1], 'the busy sub-network is on both workers');
      assert.equal(await metric(server, 'taskmoe_subnetwork_replicas'), 5);
      assert.equal(await metric(server, 'taskmoe_subnetwork_replicas', { subnetwork: 'encoder:* decoder:de' }), 2);
      assert.ok(
        ran.every((w) => w === home),
        'no batch ran on the replica before it was loaded',
      );

      // With the replica: both workers decode en-de batches and the answers do not change.
      const probe = randomSources([5, 8], cfg.vocabSize, 3);
      const key = batchKeyOf({ source: 'en', target: 'de' }, {});
      const idle = async () => {
        for (const w of [0, 1]) await server.pool.run(key, probe, undefined, w); // each worker's last report is taken idle
        return metric(server, 'taskmoe_engine_tensors');
      };
      const tensors = await idle();
      ran.length = 0;
      assert.deepEqual(await hammer(server, 4), expected);
      assert.ok(ran.includes(0) && ran.includes(1), `en-de batches ran on workers ${ran.join(',')}`);
      assert.equal(await idle(), tensors, 'the engine workers hold as many tensors as before the load');
      server.pool.rebalance();
      for (const w of ['0', '1'])
        assert.ok((await metric(server, 'taskmoe_worker_busy_ratio', { worker: w })) > 0, `worker ${w} was busy`);
      assert.equal((await server.app.inject('/info')).json().replicas['en-de'].length, 2);

      // A worker that no longer holds the replica (restarted here; evicted by its LRU alike) is
      // dropped from it at the next window, and batches go home again.
      await server.pool.crashWorker(1 - home);
      for (let i = 0; i < 200 && server.pool.workersOf('en-de').length > 1; i++) {
        await new Promise((r) => setTimeout(r, 100));
        server.pool.rebalance();
      }
      assert.deepEqual(server.pool.workersOf('en-de'), [home]);
      assert.equal(await metric(server, 'taskmoe_subnetwork_replicas'), 4);
    } finally {
      await server.shutdown();
    }
  });

  test("while the host's threads wait for a CPU, a busy pair gets no replica (it would take the other pairs' cores); once they do not, it does", async () => {
    const logs: string[] = [];
    const server = await createServer(settings({ workers: 2, replicaWindowMs: 3_600_000 }), (m) => logs.push(m));
    await expectServerBackend(server);
    try {
      const home = server.pool.homeOf('en-de');
      server.pool.cpuPressure = () => 0.4;
      server.pool.rebalance(); // a window of the hammering alone
      await hammer(server, 3);
      server.pool.rebalance();
      assert.ok(server.pool.busy()[home] >= 0.75, `busy ${server.pool.busy()[home]}`);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(server.pool.workersOf('en-de'), [home], 'no replica under CPU pressure');
      assert.ok(
        logs.some((m) => /no replica of encoder:\* decoder:de \(busy .*\): threads waited for a CPU 40%/.test(m)),
        logs.join('\n'),
      );
      server.pool.cpuPressure = () => 0.05;
      // The pair must be busy again in a fresh window; on a loaded test machine one hammering may
      // leave gaps below the threshold, so up to three windows are tried, their busy ratios reported.
      const busy: number[] = [];
      for (let tries = 0; tries < 3 && server.pool.workersOf('en-de').length < 2; tries++) {
        server.pool.rebalance();
        await hammer(server, 3);
        server.pool.rebalance();
        busy.push(server.pool.busy()[home]);
        for (let i = 0; i < 100 && server.pool.workersOf('en-de').length < 2; i++)
          await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(
        [...server.pool.workersOf('en-de')].sort(),
        [0, 1],
        `a replica once the cores are free (home busy ${busy.join(', ')})`,
      );
    } finally {
      await server.shutdown();
    }
  });

  test('with --max-replicas 1 the pair stays on its home worker, however busy', async () => {
    const server = await start({ workers: 2, maxReplicas: 1 });
    try {
      const ran = spyOnWorkers(server);
      await hammer(server, 6);
      assert.deepEqual(server.pool.workersOf('en-de'), [server.pool.homeOf('en-de')]);
      assert.ok(ran.length > 0 && ran.every((w) => w === server.pool.homeOf('en-de')));
      assert.equal(await metric(server, 'taskmoe_subnetwork_replicas'), 4);
    } finally {
      await server.shutdown();
    }
  });

  test('a worker without cache room for it gets no replica', async () => {
    // Each worker warms the shared entries and two decoders of equal size: half the total is a budget
    // that holds them and nothing more.
    const probe = await start({ workers: 2 });
    const cache = (await probe.app.inject('/info')).json().cache;
    await probe.shutdown();
    const server = await start({ workers: 2, cacheBytes: cache.bytes / 2 });
    assert.deepEqual(
      (await server.app.inject('/info')).json().cache.bytes,
      cache.bytes,
      'the budget holds what each worker warmed',
    );
    try {
      await hammer(server, 6);
      assert.deepEqual(server.pool.workersOf('en-de'), [server.pool.homeOf('en-de')]);
    } finally {
      await server.shutdown();
    }
  });
});

test('intra-op threads and replica settings: flag over environment over default, with clear errors', () => {
  const d = resolveSettings({}, {});
  assert.deepEqual(
    [d.intraOpThreads, d.replicaBusyPercent, d.replicaWaitMs, d.replicaWindowMs, d.replicaMaxCpuPressurePercent],
    [1, 75, 250, 2000, 10],
  );
  assert.equal(resolveSettings({}, { TASKMOE_REPLICA_MAX_CPU_PRESSURE: '100' }).replicaMaxCpuPressurePercent, 100);
  assert.equal(resolveSettings({}, { TASKMOE_INTRA_OP_THREADS: '3' }).intraOpThreads, 3);
  assert.equal(resolveSettings({ 'intra-op-threads': '2' }, { TASKMOE_INTRA_OP_THREADS: '3' }).intraOpThreads, 2);
  assert.equal(resolveSettings({ 'max-replicas': '1' }, {}).maxReplicas, 1);
  assert.throws(
    () => resolveSettings({ 'intra-op-threads': '0' }, {}),
    /--intra-op-threads \/ TASKMOE_INTRA_OP_THREADS must be a positive integer, got "0"/,
  );
});
