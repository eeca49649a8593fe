// The server through inject() and over real sockets, on a tiny random Token/Target checkpoint.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TaskmoeServer } from '../../src/server/app.ts';
import { batchKeyOf } from '../../src/server/request.ts';
import type { ServerSettings } from '../../src/server/settings.ts';
import { TEST_BACKEND } from '../helpers/backend.ts';
import { randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';
import { expectServedBackend, metric, startServer } from '../helpers/server.ts';

const cfg = tinyConfig('token', 'target');
let modelDir: string;

const start = (over: Partial<ServerSettings> = {}): Promise<TaskmoeServer> => startServer(modelDir, over);

function translate(server: TaskmoeServer, body: unknown, url = '/translate') {
  return server.app.inject({ method: 'POST', url, payload: body as object });
}

const SENTENCES = [
  'Could not open file',
  'Save as',
  'The file %s already exists.',
  'Quit',
  'Print the document',
  'Unknown option: --verbose',
];
const PAIRS = [
  ['en', 'de'],
  ['fr', 'de'],
  ['en', 'fr'],
  ['de', 'en'],
  ['en', 'ja'],
  ['ja', 'en'],
] as const;

before(async () => {
  modelDir = await randomCheckpoint(cfg, 11);
});

describe('a server with default batching', () => {
  let server: TaskmoeServer;
  before(async () => {
    // Replicas off: a replica loaded under this test's load would add its weights to the tensor
    // count it checks (replicas and their tensors: test/replicas.test.ts).
    server = await start({ workers: 2, maxReplicas: 1 });
  });
  after(() => server.shutdown());

  test('health, readiness, languages and info', async () => {
    assert.equal((await server.app.inject('/healthz')).statusCode, 200);
    assert.deepEqual((await server.app.inject('/readyz')).json(), { status: 'ready' });
    const languages = (await server.app.inject('/languages')).json();
    assert.deepEqual(
      languages.find((l: { code: string }) => l.code === 'en'),
      { code: 'en', name: 'English', targets: ['de', 'fr', 'ja'] },
    );
    const info = (await server.app.inject('/info')).json();
    assert.deepEqual(info.routing, { encoder: 'token', decoder: 'target' });
    assert.deepEqual(info.pairs, cfg.pairs);
    // Warm-up loaded one shared encoder and embeddings per worker, and one decoder per target language.
    assert.ok(info.cache.entries >= 2 * 2 + 3, `cache entries ${info.cache.entries}`);
  });

  test('LibreTranslate requests: a string, an array, alternatives, and the pair in the URL', async () => {
    const one = await translate(server, {
      q: 'Could not open file',
      source: 'en',
      target: 'de',
      format: 'text',
      api_key: '',
    });
    assert.equal(one.statusCode, 200, one.body);
    assert.equal(typeof one.json().translatedText, 'string');
    const many = await translate(server, { q: ['Could not open file', 'Save as'], source: 'en', target: 'de' });
    assert.equal(many.json().translatedText[0], one.json().translatedText);
    const alt = await translate(server, { q: 'Save as', source: 'en', target: 'de', alternatives: 2 });
    assert.equal(alt.json().alternatives.length, 2);
    const altMany = await translate(server, { q: ['Save as', 'Quit'], source: 'en', target: 'de', alternatives: 1 });
    assert.equal(altMany.json().alternatives.length, 2);
    assert.equal(altMany.json().alternatives[0].length, 1);
    const byUrl = await translate(server, { q: 'Could not open file' }, '/translate/en/de');
    assert.deepEqual(byUrl.json(), one.json());
  });

  test('every client mistake is a 400 with a message naming it, never a 500', async () => {
    const cases: [unknown, RegExp][] = [
      [{ source: 'en', target: 'de' }, /must have required property 'q'/],
      [{ q: '', source: 'en', target: 'de' }, /q/],
      [{ q: [], source: 'en', target: 'de' }, /q/],
      [{ q: 'x', source: 'en', target: 'xx' }, /unknown target language "xx"; supported: en, de, fr, ja/],
      [{ q: 'x', source: 'yy', target: 'de' }, /unknown source language "yy"; supported: auto, en, de, fr, ja/],
      // This checkpoint ships no langid.json.
      [{ q: 'x', source: 'auto', target: 'de' }, /no language identification profile/],
      [{ q: Array(129).fill('x'), source: 'en', target: 'de' }, /q must NOT have more than 128 items/],
      [{ q: 'x'.repeat(5001), source: 'en', target: 'de' }, /NOT have more than 5000 characters/],
      [{ q: 'x', source: 'en', target: 'de', beam_size: 99 }, /beam_size must be <= 8/],
      [{ q: 'x', source: 'en', target: 'de', beam_size: '2' }, /beam_size must be integer/],
      [{ q: 'x', source: 'en', target: 'de', format: 'xml' }, /format must be equal to one of the allowed values/],
      [
        { q: 'x', source: 'en', target: 'de', format: 'html', alternatives: 1 },
        /alternatives are not supported with format "html"/,
      ],
      [{ q: '<p>x</b>', source: 'en', target: 'de', format: 'html' }, /q\[0\]: line 1: <\/b> closes no open element/],
    ];
    for (const [body, message] of cases) {
      const r = await translate(server, body);
      assert.equal(r.statusCode, 400, `${JSON.stringify(body).slice(0, 80)} -> ${r.statusCode} ${r.body}`);
      assert.match(r.json().error, message);
    }
    const bad = await server.app.inject({
      method: 'POST',
      url: '/translate',
      headers: { 'content-type': 'application/json' },
      payload: '{"q": "x",',
    });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error, /not valid JSON/);
    const mismatch = await translate(server, { q: 'x', source: 'fr' }, '/translate/en/de');
    assert.equal(mismatch.statusCode, 400);
    assert.ok((await metric(server, 'taskmoe_rejected_total', { reason: 'invalid' })) >= cases.length);
  });

  test('concurrent requests over many pairs are batched per pair, and no tensor leaks', async () => {
    const tensorsBefore = await metric(server, 'taskmoe_engine_tensors');
    const batchesBefore = await metric(server, 'taskmoe_batch_sentences_count');
    const requests = Array.from({ length: 300 }, (_, i) => {
      const [source, target] = PAIRS[i % PAIRS.length];
      return translate(server, { q: SENTENCES[i % SENTENCES.length], source, target });
    });
    const responses = await Promise.all(requests);
    assert.ok(
      responses.every((r) => r.statusCode === 200),
      responses.find((r) => r.statusCode !== 200)?.body,
    );
    for (const [source, target] of PAIRS) {
      const sentences = await metric(server, 'taskmoe_batch_sentences_sum', { pair: `${source}-${target}` });
      assert.ok(sentences >= 50, `${source}-${target}: ${sentences} sentences in its batches`);
    }
    const batches = (await metric(server, 'taskmoe_batch_sentences_count')) - batchesBefore;
    assert.ok(batches < 300 / 2, `300 single-sentence requests ran in ${batches} batches`);
    assert.equal(await metric(server, 'taskmoe_engine_tensors'), tensorsBefore);
    assert.ok((await metric(server, 'taskmoe_generated_tokens_total')) > 0);
  });
});

describe('batching, cache budget and limits', () => {
  test('results are identical with and without batching, and with a cache budget below all sub-networks', async () => {
    const batched = await start({ workers: 1 });
    const single = await start({ workers: 1, maxBatchSentences: 1 });
    // Room for the shared parts and one decoder, not for four decoders.
    const infoAll = (await batched.app.inject('/info')).json();
    const small = await start({ workers: 1, cacheBytes: Math.floor(infoAll.cache.bytes * 0.7), warm: 'none' });
    try {
      const ask = (s: TaskmoeServer) =>
        Promise.all(PAIRS.map(([source, target]) => translate(s, { q: SENTENCES, source, target })));
      const a = await ask(batched);
      const b = await ask(single);
      const c = await ask(small);
      const d = await ask(small); // again: every decoder was evicted at least once
      for (let i = 0; i < PAIRS.length; i++) {
        assert.deepEqual(b[i].json(), a[i].json(), `${PAIRS[i]} differs without batching`);
        assert.deepEqual(c[i].json(), a[i].json(), `${PAIRS[i]} differs with a small cache`);
        assert.deepEqual(d[i].json(), a[i].json());
      }
      assert.equal(
        (await metric(single, 'taskmoe_batch_sentences_sum')) / (await metric(single, 'taskmoe_batch_sentences_count')),
        1,
      );
      assert.ok((await metric(small, 'taskmoe_cache_evictions_total')) > 0, 'the small cache evicts');
      assert.ok((await metric(small, 'taskmoe_cache_bytes')) <= infoAll.cache.bytes * 0.7);
    } finally {
      await Promise.all([batched.shutdown(), single.shutdown(), small.shutdown()]);
    }
  });

  test('a full queue answers 429 with Retry-After, a passed deadline 504, a large body 413', async () => {
    const server = await start({ maxQueuedSentences: 4, timeoutMs: 1, maxDelayMs: 50, bodyLimitBytes: 2000 });
    try {
      const full = await translate(server, { q: SENTENCES, source: 'en', target: 'de' });
      assert.equal(full.statusCode, 429, full.body);
      assert.ok(Number(full.headers['retry-after']) >= 1);
      assert.match(full.json().error, /too many queued requests for en-de/);
      const late = await translate(server, { q: 'Save as', source: 'en', target: 'de' });
      assert.equal(late.statusCode, 504, late.body);
      const big = await translate(server, { q: 'x'.repeat(1990), source: 'en', target: 'de' });
      assert.equal(big.statusCode, 413);
      assert.match(big.json().error, /larger than the limit of 2000 bytes/);
      assert.equal(await metric(server, 'taskmoe_rejected_total', { reason: 'queue_full' }), 1);
      assert.equal(await metric(server, 'taskmoe_rejected_total', { reason: 'deadline' }), 1);
      assert.equal((await server.app.inject('/healthz')).statusCode, 200, 'the server keeps serving');
    } finally {
      await server.shutdown();
    }
  });

  test('work of a request that missed its deadline is dropped from its engine worker, which goes on serving', async () => {
    // Batches of 8, so the 64 sentences take several rounds of decoding and the deadline passes mid-way.
    const server = await start({ timeoutMs: 50, maxDelayMs: 0, maxBatchSentences: 8 });
    try {
      const probe = randomSources([6, 9], cfg.vocabSize, 3);
      const expected = (await server.pool.run(batchKeyOf({ source: 'en', target: 'de' }, {}), probe)).translations;
      const tensors = await metric(server, 'taskmoe_engine_tensors');
      const late = await translate(server, {
        q: Array(64).fill('Print the document'),
        source: 'en',
        target: 'de',
        max_length: 40,
      });
      assert.equal(late.statusCode, 504, late.body);
      const dropped = await metric(server, 'taskmoe_cancelled_sentences_total', { pair: 'en-de' });
      assert.ok(dropped >= 8 && dropped < 64, `${dropped} sentences dropped in the worker`);
      assert.deepEqual(
        (await server.pool.run(batchKeyOf({ source: 'en', target: 'de' }, {}), probe)).translations,
        expected,
      );
      assert.equal(await metric(server, 'taskmoe_engine_tensors'), tensors);
    } finally {
      await server.shutdown();
    }
  });

  test('a crashed engine worker fails its requests clearly and is restarted', async () => {
    const server = await start({ maxBatchSentences: 64 });
    try {
      const inFlight = translate(server, {
        q: Array(64).fill('Print the document'),
        source: 'en',
        target: 'de',
        max_length: 40,
        beam_size: 4,
      });
      await new Promise((r) => setTimeout(r, 50));
      await server.pool.crashWorker(0);
      const failed = await inFlight;
      assert.equal(failed.statusCode, 503, failed.body);
      assert.match(failed.json().error, /engine worker 0 exited/);
      const next = await translate(server, { q: 'Save as', source: 'en', target: 'de' });
      assert.equal(next.statusCode, 200, next.body);
      assert.equal((await server.app.inject('/info')).json().workerRestarts, 1);
    } finally {
      await server.shutdown();
    }
  });

  test('draining: readiness turns 503, queued work finishes, new work is refused', async () => {
    const server = await start({ maxDelayMs: 200 });
    const queued = translate(server, { q: SENTENCES, source: 'en', target: 'de' });
    await new Promise((r) => setTimeout(r, 20));
    const stopping = server.shutdown();
    assert.equal((await server.app.inject('/readyz')).statusCode, 503);
    const refused = await translate(server, { q: 'Quit', source: 'en', target: 'de' });
    assert.equal(refused.statusCode, 503);
    assert.match(refused.json().error, /shutting down/);
    assert.equal((await queued).statusCode, 200);
    assert.equal(
      await metric(server, 'taskmoe_rejected_total', { reason: 'draining' }),
      1,
      'the refused request is counted once',
    );
    await stopping;
  });

  test('a client that goes away while queued is counted once as cancelled, and its sentences leave the queue', async () => {
    const server = await start({ maxDelayMs: 5000 });
    try {
      const address = await server.app.listen({ port: 0, host: '127.0.0.1' });
      const body = JSON.stringify({ q: ['Quit', 'Save as'], source: 'en', target: 'de' });
      const req = http.request(`${address}/translate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      req.on('error', () => {});
      req.end(body);
      for (let i = 0; i < 100 && (await metric(server, 'taskmoe_queue_depth', { pair: 'en-de' })) < 2; i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(await metric(server, 'taskmoe_queue_depth', { pair: 'en-de' }), 2);
      req.destroy();
      for (let i = 0; i < 100 && (await metric(server, 'taskmoe_rejected_total', { reason: 'cancelled' })) < 1; i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.equal(await metric(server, 'taskmoe_rejected_total', { reason: 'cancelled' }), 1);
      assert.equal(await metric(server, 'taskmoe_queue_depth', { pair: 'en-de' }), 0);
    } finally {
      await server.shutdown();
    }
  });

  test('--max-queue bounds the queued sentences of a pair whatever their decoding options, and queue_depth reports their sum', async () => {
    // A batch waits up to 2 s to fill, so every request below arrives while the first is still queued.
    const server = await start({ maxQueuedSentences: 16, maxDelayMs: 2000 });
    try {
      const texts = Array.from({ length: 16 }, (_, i) => SENTENCES[i % SENTENCES.length]);
      // Distinct max_length values give each request decoding options (and a batch key) of its own.
      const answers = Array.from({ length: 40 }, (_, i) =>
        translate(server, { q: texts, source: 'en', target: 'de', max_length: i + 1 }),
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await metric(server, 'taskmoe_queue_depth', { pair: 'en-de' }), 16);
      const codes = (await Promise.all(answers)).map((a) => a.statusCode);
      assert.equal(codes.filter((c) => c === 429).length, 39, `status codes ${codes.join(' ')}`);
      assert.equal(codes.filter((c) => c === 200).length, 1);
      assert.equal(await metric(server, 'taskmoe_rejected_total', { reason: 'queue_full' }), 39);
      assert.equal(await metric(server, 'taskmoe_queue_depth', { pair: 'en-de' }), 0);
    } finally {
      await server.shutdown();
    }
  });
});

test('a real listening server: SIGTERM drains in-flight requests and exits 0', async () => {
  const port = 18000 + Math.floor(Math.random() * 1000);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, '..', 'helpers', 'cli-entry.ts'),
      'serve',
      '--model',
      modelDir,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--workers',
      '1',
    ],
    {
      env: { ...process.env, TASKMOE_BACKEND: TEST_BACKEND },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  // Start-up takes longer on tfjs-node (it loads TensorFlow's library) and on a busy machine.
  let ready = false;
  for (let i = 0; i < 600 && !ready; i++) {
    ready = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(ready, `the server turned ready within 60 s: ${stderr}`);
  await expectServedBackend({ url, stop: () => child.kill('SIGKILL') });
  // /healthz answers quickly while a batch decodes on the engine thread.
  const post = (q: string[]) =>
    fetch(`${url}/translate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ q, source: 'en', target: 'de', max_length: 40 }),
    });
  const requests = Array.from({ length: 8 }, () => post(SENTENCES));
  const healthMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    healthMs.push(performance.now() - t0);
  }
  child.kill('SIGTERM');
  const statuses = await Promise.all(requests.map((p) => p.then((r) => r.status)));
  assert.deepEqual(statuses, Array(8).fill(200), stderr);
  assert.equal(await exited, 0, stderr);
  const median = healthMs.sort((a, b) => a - b)[2];
  assert.ok(median < 50, `/healthz took ${healthMs.map((m) => m.toFixed(1)).join(', ')} ms while batches decoded`);
});
