// The fault suite (issue 12), continued from faults.test.ts: bounded connections and requests,
// retry hints, SIGTERM under load, no internals on the API port, fuzzed bodies and overload.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fuzzByteBodies, fuzzJsonBodies } from '../../src/bench/fuzz.ts';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import type { ServerSettings } from '../../src/server/settings.ts';
import { TEST_BACKEND } from '../helpers/backend.ts';
import { randomCheckpoint } from '../helpers/engine.ts';
import { startServerProcess } from '../../src/bench/server-process.ts';
import { FAULT_CONFIG, FAULT_SEED, texts, translate } from '../helpers/faults.ts';
import { expectServedBackend, expectServerBackend, startServer, testSettings } from '../helpers/server.ts';

let modelDir: string;

before(async () => {
  modelDir = await randomCheckpoint(FAULT_CONFIG, FAULT_SEED);
});

const settings = (over: Partial<ServerSettings>): ServerSettings => testSettings(modelDir, over);
const start = (over: Partial<ServerSettings> = {}): Promise<TaskmoeServer> => startServer(modelDir, over);

describe('HTTP limits, retry hints and internals (defects 8 and 9, item 7)', () => {
  test('a body trickled a byte at a time is cut off at --request-timeout-ms; connections past --max-connections are closed', async () => {
    const server = await createServer(settings({ requestTimeoutMs: 1000, headerTimeoutMs: 500, maxConnections: 3 }));
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = server.app.server.address() as net.AddressInfo;
    try {
      await expectServerBackend(server);
      const slow = net.connect(port, '127.0.0.1');
      let reply = '';
      slow.on('data', (d) => (reply += d));
      const closed = new Promise<number>((resolve) => slow.on('close', () => resolve(Date.now())));
      slow.write(
        'POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
      );
      const t0 = Date.now();
      const drip = setInterval(() => slow.writable && slow.write(' '), 200);
      const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 8000))]);
      clearInterval(drip);
      assert.ok(at > 0, 'the slow connection was closed');
      assert.ok(at - t0 < 4000, `closed after ${at - t0} ms`);
      assert.match(reply, /^HTTP\/1\.1 408/);

      const idle = await Promise.all(
        [1, 2, 3].map(
          () =>
            new Promise<net.Socket>((resolve) => {
              const s = net.connect(port, '127.0.0.1', () => resolve(s));
            }),
        ),
      );
      await new Promise((r) => setTimeout(r, 100));
      const extra = net.connect(port, '127.0.0.1');
      const extraClosed = await Promise.race([
        new Promise<boolean>((r) => extra.on('close', () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
      ]);
      extra.on('error', () => {});
      assert.ok(extraClosed, 'a connection past --max-connections 3 is closed');
      for (const s of idle) s.destroy();
    } finally {
      await server.shutdown();
    }
  });

  test('503s while warming up or draining carry Retry-After, draining ones Connection: close; /info names the model without its path', async () => {
    const server = await createServer(settings({ maxDelayMs: 200 }));
    const warming = await translate(server, { q: 'Quit', source: 'en', target: 'de' });
    assert.equal(warming.statusCode, 503);
    assert.ok(Number(warming.headers['retry-after']) >= 1, 'warming-up 503 has Retry-After');
    const readyz = await server.app.inject('/readyz');
    assert.equal(readyz.statusCode, 503);
    assert.ok(Number(readyz.headers['retry-after']) >= 1);
    await expectServerBackend(server);
    const info = (await server.app.inject('/info')).json();
    assert.equal(info.model, path.basename(modelDir));
    assert.ok(!JSON.stringify(info).includes(path.dirname(modelDir)), 'no filesystem path in /info');
    const stopping = server.shutdown();
    const draining = await translate(server, { q: 'Quit', source: 'en', target: 'de' });
    assert.equal(draining.statusCode, 503);
    assert.ok(Number(draining.headers['retry-after']) >= 1, 'draining 503 has Retry-After');
    assert.equal(draining.headers.connection, 'close');
    await stopping;
  });

  test('/metrics behind a bearer token, or on its own port', async () => {
    const guarded = await start({ metricsToken: 's3cret' });
    try {
      assert.equal((await guarded.app.inject('/metrics')).statusCode, 401);
      assert.equal(
        (await guarded.app.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong' } })).statusCode,
        401,
      );
      const ok = await guarded.app.inject({ url: '/metrics', headers: { authorization: 'Bearer s3cret' } });
      assert.equal(ok.statusCode, 200);
      assert.match(ok.body, /taskmoe_requests_total/);
    } finally {
      await guarded.shutdown();
    }
    const apart = await start({ metricsPort: '0' });
    try {
      assert.equal((await apart.app.inject('/metrics')).statusCode, 404, 'not on the API port');
      assert.equal((await apart.metricsApp!.inject('/metrics')).statusCode, 200);
    } finally {
      await apart.shutdown();
    }
  });
});

/** One request over a real socket, with its raw headers. */
function post(port: number, body: unknown): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve) => {
    const req = http.request(
      { port, host: '127.0.0.1', method: 'POST', path: '/translate', headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', () => resolve({ status: 0, headers: {} }));
    req.end(JSON.stringify(body));
  });
}

test('SIGTERM with beam work in flight ends within --drain-grace-ms plus 0.5 s; what cannot finish is a 503 with Retry-After and Connection: close (defect 5)', async () => {
  const grace = 6000;
  const server = await startServerProcess({
    model: modelDir,
    args: [
      '--workers',
      '1',
      '--drain-grace-ms',
      String(grace),
      '--timeout-ms',
      '120000',
      '--max-client-cost',
      '100000000',
    ],
    cli: { execArgv: ['--import', 'tsx'], entry: path.join(import.meta.dirname, '..', 'helpers', 'cli-entry.ts') },
    env: { ...process.env, TASKMOE_BACKEND: TEST_BACKEND },
    readyTimeoutMs: 90_000,
  });
  await expectServedBackend(server);
  const port = server.port;
  // Far more beam work than the grace allows.
  const requests = Array.from({ length: 24 }, (_, i) =>
    post(port, {
      q: texts(32, `Print page ${i}`),
      source: 'en',
      target: i % 2 ? 'de' : 'fr',
      beam_size: 8,
      max_length: 40,
    }),
  );
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  server.child.kill('SIGTERM');
  const answers = await Promise.all(requests);
  const code = await server.exited;
  const elapsed = Date.now() - t0;
  assert.equal(code, 0, server.output());
  // The grace's last 2 s is kept for the 503s to reach their clients and the workers and process to
  // tear down (app.ts, workGraceMs); the work itself had 4 s, far less than it needs.
  assert.ok(elapsed < grace + 500, `exited ${elapsed} ms after SIGTERM with --drain-grace-ms ${grace}`);
  const cut = answers.filter((a) => a.status !== 200);
  assert.ok(cut.length > 0, 'some work could not finish within the grace');
  for (const a of cut) {
    assert.equal(a.status, 503, JSON.stringify(a));
    assert.ok(Number(a.headers['retry-after']) >= 1);
    assert.equal(a.headers.connection, 'close');
  }
});

describe('hostile and heavy traffic', () => {
  let server: TaskmoeServer;
  before(async () => {
    server = await start({ workers: 2, maxQueuedSentences: 8, maxDelayMs: 20 });
  });
  after(() => server.shutdown());

  test('fuzzed bodies: every one is a 4xx naming the problem, never a 500, and the server keeps serving', async () => {
    const bodies: { payload: string; type: string }[] = [
      ...fuzzJsonBodies(150, 12).map((payload) => ({ payload, type: 'application/json' })),
      ...fuzzByteBodies(30, 13).map((payload, i) => ({ payload, type: i % 2 ? 'application/json' : 'text/plain' })),
    ];
    bodies.push(
      { payload: '['.repeat(5000), type: 'application/json' },
      { payload: JSON.stringify({ q: 'x'.repeat(2_000_000) }), type: 'application/json' },
    );
    const statuses = new Map<number, number>();
    for (const b of bodies) {
      const r = await server.app.inject({
        method: 'POST',
        url: '/translate',
        headers: { 'content-type': b.type },
        payload: b.payload,
      });
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
      assert.ok(
        r.statusCode >= 400 && r.statusCode < 500,
        `${b.payload.slice(0, 60)} -> ${r.statusCode} ${r.body.slice(0, 200)}`,
      );
      assert.ok(typeof r.json().error === 'string' && r.json().error.length > 0);
    }
    assert.ok(statuses.size >= 2, `statuses ${JSON.stringify([...statuses])}`);
    assert.equal((await translate(server, { q: 'Save as', source: 'en', target: 'de' })).statusCode, 200);
  });

  test("overload with a small queue: 200 or 429 with Retry-After, and every answer is its own text's translation (none wrong or swapped)", async () => {
    const sentences = texts(10, 'Open the file');
    const alone = new Map<string, string>();
    for (const s of sentences)
      alone.set(s, (await translate(server, { q: s, source: 'en', target: 'de' })).json().translatedText);
    const answers = await Promise.all(
      Array.from({ length: 80 }, (_, i) => {
        const q = sentences[i % 10];
        return translate(server, { q, source: 'en', target: 'de' }, `10.1.0.${i % 7}`).then((r) => ({ q, r }));
      }),
    );
    const ok = answers.filter((a) => a.r.statusCode === 200);
    const limited = answers.filter((a) => a.r.statusCode === 429);
    assert.equal(ok.length + limited.length, answers.length, JSON.stringify(answers.map((a) => a.r.statusCode)));
    assert.ok(ok.length > 0 && limited.length > 0, `${ok.length} answered, ${limited.length} refused`);
    for (const a of limited) assert.ok(Number(a.r.headers['retry-after']) >= 1);
    for (const a of ok) assert.equal(a.r.json().translatedText, alone.get(a.q), `the answer to "${a.q}"`);
  });
});
