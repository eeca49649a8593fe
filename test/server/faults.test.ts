// The fault suite (issue 12): hostile and unlucky traffic against a real server on loopback,
// bounded in count and time. Here: cost limits and fair engine time, and honest readiness under
// worker crashes; faults-http.test.ts: bounded connections, shutdown, internals, hostile bodies.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import type { TaskmoeServer } from '../../src/server/app.ts';
import type { ServerSettings } from '../../src/server/settings.ts';
// Sets TASKMOE_BACKEND for the engine workers: the test backend (wasm unless TASKMOE_BACKEND=node).
import '../helpers/backend.ts';
import { randomCheckpoint } from '../helpers/engine.ts';
import { FAULT_CONFIG, FAULT_SEED, texts, translate, until } from '../helpers/faults.ts';
import { startServer } from '../helpers/server.ts';

let modelDir: string;

before(async () => {
  modelDir = await randomCheckpoint(FAULT_CONFIG, FAULT_SEED);
});

const start = (over: Partial<ServerSettings> = {}): Promise<TaskmoeServer> => startServer(modelDir, over);

describe('cost limits and fair engine time (defect 1)', () => {
  test('a request over --max-request-cost is a 400 naming the limit; a client over its share of a worker is a 429 with Retry-After', async () => {
    const server = await start({ maxRequestCost: 2000, maxClientCost: 1500, maxDelayMs: 50 });
    try {
      // The heavy request, scaled to the tiny model: texts x beam 8 x max_length.
      const heavy = await translate(server, {
        q: texts(64),
        source: 'en',
        target: 'de',
        beam_size: 8,
        alternatives: 4,
        max_length: 40,
      });
      assert.equal(heavy.statusCode, 400, heavy.body);
      assert.match(heavy.json().error, /costs 20480 decoder row-steps .*the limit is 2000 \(--max-request-cost\)/);
      // 6 texts x beam 4 x 40 = 960 each: a second one in flight for the same client passes 1500.
      const body = { q: texts(6), source: 'en', target: 'de', beam_size: 4, max_length: 40 };
      const [first, second, other] = await Promise.all([
        translate(server, body),
        translate(server, body),
        translate(server, body, '10.0.0.2'),
      ]);
      assert.equal(first.statusCode, 200, first.body);
      assert.equal(second.statusCode, 429, second.body);
      assert.match(second.json().error, /share of 1500 \(--max-client-cost\)/);
      assert.ok(Number(second.headers['retry-after']) >= 1);
      assert.equal(other.statusCode, 200, 'another client is not affected');
      assert.equal(
        (await translate(server, body)).statusCode,
        200,
        'the share is free again once the first request ended',
      );
    } finally {
      await server.shutdown();
    }
  });

  test('a heavy beam request of one pair does not hold back a short request of another pair on the same worker', async () => {
    const server = await start({ maxBatchSentences: 8, maxClientCost: 1 << 30 });
    try {
      let heavyDone = false;
      // 32 texts in 4 batches of 8, beam 4: more than the two batches a worker takes at once.
      const heavy = translate(server, { q: texts(32), source: 'en', target: 'de', beam_size: 4, max_length: 40 }).then(
        (r) => ((heavyDone = true), r),
      );
      await new Promise((r) => setTimeout(r, 100));
      const probe = await translate(server, { q: 'Quit', source: 'en', target: 'fr' }, '10.0.0.3');
      assert.equal(probe.statusCode, 200, probe.body);
      assert.equal(heavyDone, false, 'the probe of en-fr finished while the heavy en-de request still decoded');
      assert.equal((await heavy).statusCode, 200);
    } finally {
      await server.shutdown();
    }
  });
});

describe('readiness that tells the truth (defects 3 and 4)', () => {
  test('a lane whose restart fails makes /readyz 503 with the reason, is retried, and serves again once it can', async () => {
    const dir = path.join(path.dirname(modelDir), 'readyz-copy');
    fs.cpSync(modelDir, dir, { recursive: true });
    const server = await start({ modelDir: dir });
    const shard = path.join(dir, 'group1-shard1of1.bin');
    try {
      fs.renameSync(shard, `${shard}.away`);
      await server.pool.crashWorker(0);
      await until(
        'a restart failed',
        () => server.pool.health()[0].restarts >= 1 && server.pool.health()[0].status === 'down',
      );
      const readyz = await server.app.inject('/readyz');
      assert.equal(readyz.statusCode, 503);
      assert.match(readyz.json().reason, /engine worker 0 failed to start: .*missing shard file/);
      assert.ok(Number(readyz.headers['retry-after']) >= 1);
      const refused = await translate(server, { q: 'Save as', source: 'en', target: 'de' });
      assert.equal(refused.statusCode, 503, refused.body);
      assert.ok(Number(refused.headers['retry-after']) >= 1);
      fs.renameSync(`${shard}.away`, shard);
      await until('/readyz is 200 again', async () => (await server.app.inject('/readyz')).statusCode === 200, 30_000);
      assert.equal((await translate(server, { q: 'Save as', source: 'en', target: 'de' })).statusCode, 200);
    } finally {
      if (fs.existsSync(`${shard}.away`)) fs.renameSync(`${shard}.away`, shard);
      await server.shutdown();
    }
  });

  test('repeated worker crashes under load, during warm-up too: every request is answered 200 or 503 with Retry-After, fast, and shutdown finishes', async () => {
    const server = await start({ timeoutMs: 180_000 });
    const answers: { status: number; retryAfter?: string; ms: number }[] = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const t0 = Date.now();
        const r = await translate(server, {
          q: texts(4, 'Could not open file'),
          source: i % 2 ? 'en' : 'fr',
          target: 'de',
          max_length: 20,
        });
        answers.push({
          status: r.statusCode,
          retryAfter: r.headers['retry-after'] as string | undefined,
          ms: Date.now() - t0,
        });
      }
    })();
    try {
      for (let round = 0; round < 3; round++) {
        await new Promise((r) => setTimeout(r, 150));
        await server.pool.crashWorker(0);
        // Crash again while the restart warms up.
        await until('the restart begins', () => server.pool.health()[0].status === 'starting');
        await server.pool.crashWorker(0);
        assert.equal((await server.app.inject('/readyz')).statusCode, 503, '/readyz says the lane cannot serve');
        await until('the lane is ready again', () => server.pool.health()[0].status === 'ready');
      }
    } catch (err) {
      stop = true;
      await load;
      await server.shutdown();
      throw err;
    } finally {
      stop = true;
      await load;
    }
    try {
      await checkAnswers();
    } catch (err) {
      await server.shutdown();
      throw err;
    }
    const t0 = Date.now();
    await server.shutdown();
    assert.ok(Date.now() - t0 < 5000, 'shutdown finished');

    async function checkAnswers(): Promise<void> {
      const statuses = new Set(answers.map((a) => a.status));
      assert.ok(
        [...statuses].every((s) => s === 200 || s === 503),
        `statuses ${[...statuses]}`,
      );
      assert.ok(answers.some((a) => a.status === 503) && answers.some((a) => a.status === 200));
      for (const a of answers.filter((x) => x.status === 503))
        assert.ok(Number(a.retryAfter) >= 1, 'every 503 has Retry-After');
      // A request may wait for a restart's warm-up (seconds; tens of seconds on a loaded machine), never for the deadline.
      const slowest = Math.max(...answers.map((a) => a.ms));
      assert.ok(slowest < 90_000, `the slowest answer took ${slowest} ms; nothing waited for the 180 s deadline`);
      assert.equal((await server.app.inject('/readyz')).statusCode, 200);
    }
  });
});
