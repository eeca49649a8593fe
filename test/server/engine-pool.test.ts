// The engine pool under worker failures: a crash during a restart's warm-up, a restart that cannot
// load its model. Nothing waits for a dead worker; a failed start is retried until it works.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { EnginePool } from '../../src/server/engine-pool.ts';
import { EngineUnavailableError } from '../../src/server/errors.ts';
import { batchKeyOf } from '../../src/server/request.ts';
import { TEST_BACKEND } from '../helpers/backend.ts';
import { randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';

const cfg = tinyConfig('token', 'target');
let modelDir: string;
const pools: EnginePool[] = [];

before(async () => {
  modelDir = await randomCheckpoint(cfg, 21);
});
after(() => Promise.all(pools.map((p) => p.close())));

function pool(dir = modelDir): EnginePool {
  const p = new EnginePool({
    modelDir: dir,
    workers: 1,
    cacheBytes: 64 << 20,
    maxRows: 8,
    pairs: ['en-de'],
    subnetworkOf: () => ({ id: 'de', entries: [] }),
    warmPairs: ['en-de'],
    intraOpThreads: 1,
    replicas: { busyRatio: 0.75, waitMs: 250, maxReplicas: 1, maxCpuPressure: 0.1, windowMs: 60_000 },
  });
  pools.push(p);
  return p;
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sources = randomSources([5, 7], 1000, 3);
const enDe = batchKeyOf({ source: 'en', target: 'de' }, {});

test(`a worker that dies during its restart's warm-up fails the batch waiting for it at once, then comes back (${TEST_BACKEND})`, async () => {
  const p = pool();
  await p.ready;
  const alone = await p.run(enDe, sources);
  await p.crashWorker(0);
  await until('the restart begins', () => p.health()[0].status === 'starting');
  // A batch that arrives while the new worker warms up waits for it; the worker dies before it is ready.
  const waiting = p.run(enDe, sources);
  await p.crashWorker(0);
  const started = Date.now();
  await assert.rejects(
    waiting,
    (e: unknown) =>
      e instanceof EngineUnavailableError && e.retryAfterSeconds >= 1 && /engine worker 0 exited/.test(e.message),
  );
  assert.ok(Date.now() - started < 1000, 'failed at once, not at a deadline');
  const down = p.health()[0];
  assert.equal(down.status, 'down');
  assert.match(down.reason ?? '', /engine worker 0 exited with code/);
  // Retried after a backoff, and serving again.
  await until('the worker is ready again', () => p.health()[0].status === 'ready');
  assert.deepEqual((await p.run(enDe, sources)).translations, alone.translations);
  assert.equal(p.health()[0].restarts, 2);
});

test('a restart that cannot load its model is retried with backoff, and serves once the model is back', async () => {
  const dir = path.join(path.dirname(modelDir), 'copy');
  fs.cpSync(modelDir, dir, { recursive: true });
  const p = pool(dir);
  await p.ready;
  const shard = path.join(dir, 'group1-shard1of1.bin');
  fs.renameSync(shard, `${shard}.away`);
  await p.crashWorker(0);
  await until('a restart has failed twice', () => p.health()[0].restarts >= 2 && p.health()[0].status === 'down');
  assert.match(p.health()[0].reason ?? '', /failed to start: .*missing shard file group1-shard1of1\.bin/);
  await assert.rejects(
    p.run(enDe, sources),
    (e: unknown) => e instanceof EngineUnavailableError && /please retry/.test(e.message),
  );
  fs.renameSync(`${shard}.away`, shard);
  await until('the worker is ready again', () => p.health()[0].status === 'ready', 30_000);
  assert.equal((await p.run(enDe, sources)).translations.length, 2);
});
