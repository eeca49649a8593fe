// The load-test plumbing shared by `taskmoe bench server` and scripts/: Prometheus text parsing
// against prom-client's own output, and the closed loop against a real HTTP server.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { closedLoop, freePort, parseMetrics, sumMetric, waitFor } from '../../src/bench/load.ts';

test('parseMetrics reads prom-client exposition; sumMetric filters by name and labels', async () => {
  const registry = new Registry();
  const c = new Counter({ name: 'x_total', help: 'h', labelNames: ['pair', 'note'], registers: [registry] });
  c.inc({ pair: 'en-de', note: 'a "quoted", {braced} value' }, 3);
  c.inc({ pair: 'en-fr', note: 'b' }, 4);
  const h = new Histogram({
    name: 'b_sentences',
    help: 'h',
    labelNames: ['pair'],
    buckets: [1, 8],
    registers: [registry],
  });
  h.observe({ pair: 'en-de' }, 5);
  h.observe({ pair: 'en-fr' }, 2);
  const samples = parseMetrics(await registry.metrics());
  assert.equal(sumMetric(samples, 'x_total'), 7);
  assert.equal(sumMetric(samples, 'x_total', { pair: 'en-de' }), 3);
  assert.equal(
    samples.find((s) => s.name === 'x_total' && s.labels.pair === 'en-de')?.labels.note,
    'a "quoted", {braced} value',
  );
  assert.equal(sumMetric(samples, 'b_sentences_sum', { pair: 'en-de' }), 5);
  assert.equal(sumMetric(samples, 'b_sentences_count'), 2);
  assert.equal(sumMetric(samples, 'b_sentences_bucket', { le: '8' }), 2);
  assert.equal(sumMetric(samples, 'missing_total'), 0);
});

test('closedLoop keeps `concurrency` requests in flight, sends each once, and reports every answer', async () => {
  let inFlight = 0;
  let peak = 0;
  const bodies: unknown[] = [];
  const server = http.createServer((req, res) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () =>
      setTimeout(() => {
        inFlight--;
        const body = JSON.parse(data) as { i: number };
        bodies.push(body.i);
        res.statusCode = body.i % 5 === 0 ? 503 : 200;
        res.end('{}');
      }, 30),
    );
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      'the test server',
      async () => (await fetch(url, { method: 'POST', body: '{"i":1}' })).status === 200,
      { timeoutMs: 5000 },
    );
    bodies.length = 0;
    const statuses = new Map<number, number | string>();
    await closedLoop({
      concurrency: 4,
      request: (i) => (i < 20 ? { url, body: { i } } : undefined),
      onAnswer: (a) => statuses.set(a.index, a.status),
    });
    assert.deepEqual(
      [...bodies].sort((a, b) => (a as number) - (b as number)),
      Array.from({ length: 20 }, (_, i) => i),
    );
    // Never more than four at once (each client waits for its answer); more than one (they overlap).
    assert.ok(peak <= 4 && peak > 1, `peak ${peak} requests in flight`);
    assert.equal([...statuses.values()].filter((s) => s === 503).length, 4);
  } finally {
    server.close();
  }
});

test('waitFor gives up as soon as the process it waits for has exited', async () => {
  await assert.rejects(
    waitFor('never', async () => false, {
      timeoutMs: 10_000,
      exited: () => 'server exited (1)',
      context: () => 'last log line',
    }),
    /server exited \(1\) while waiting for never: last log line/,
  );
});
