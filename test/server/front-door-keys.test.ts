// API keys and quotas: the key database, the fixed-window limiter, and the server's translation
// routes with --api-keys, per-key and per-address limits, a restart, and concurrent clients.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import { KeyStore, keyDbPath } from '../../src/server/front-door/key-store.ts';
import { Limiter } from '../../src/server/front-door/limiter.ts';
import { resolveSettings, type ServerSettings } from '../../src/server/settings.ts';
import { runCli } from '../helpers/cli.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { randomCheckpoint, tempDir, tinyConfig } from '../helpers/engine.ts';
import { expectServerBackend } from '../helpers/server.ts';

// The checkpoints below are written by tensor code on this thread.
before(useTestBackend);

describe('the key database', () => {
  test('is created on first use, readable by its owner only, and keeps keys across connections', () => {
    const dir = path.join(tempDir(), 'nested', 'data');
    const store = KeyStore.open(keyDbPath(dir));
    assert.equal(fs.statSync(keyDbPath(dir)).mode & 0o777, 0o600);
    const a = store.add({ name: 'alice', reqPerMinute: 10 });
    const b = store.add({ charsPerDay: 500 });
    assert.match(a.key, /^[0-9a-f-]{36}$/);
    assert.notEqual(a.key, b.key);
    store.close();
    const again = KeyStore.open(keyDbPath(dir));
    assert.deepEqual(
      again
        .list()
        .map((k) => [k.name, k.reqPerMinute, k.charsPerDay])
        .sort(),
      [
        ['', null, 500],
        ['alice', 10, null],
      ],
    );
    assert.equal(again.remove(a.key), true);
    assert.equal(again.remove(a.key), false);
    assert.equal(again.get(a.key), undefined);
    again.close();
  });

  test('that cannot be opened stops with an error naming its path', () => {
    const file = path.join(tempDir(), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    assert.throws(
      () => KeyStore.open(keyDbPath(file)),
      (err: Error) => err.message.startsWith(`cannot open the API key database at ${keyDbPath(file)}`),
    );
    const garbage = path.join(tempDir(), 'keys.sqlite');
    fs.writeFileSync(garbage, 'this is not a database, just forty-odd bytes of text.'.repeat(4));
    assert.throws(
      () => KeyStore.open(garbage),
      /cannot open the API key database at .*keys\.sqlite: file is not a database/,
    );
  });
});

describe('the limiter', () => {
  test('counts requests per minute and characters per UTC day, each window afresh', () => {
    let now = Date.UTC(2026, 0, 1, 12, 0, 10);
    const store = KeyStore.open(keyDbPath(tempDir()));
    const limiter = new Limiter(store.db, () => now);
    const limits = { reqPerMinute: 2, charsPerDay: 100 };
    assert.deepEqual(limiter.admit('a', limits, 10), {
      ok: true,
      window: { limit: 2, remaining: 1, resetSeconds: 50 },
    });
    assert.equal(limiter.admit('a', limits, 10).ok, true);
    const third = limiter.admit('a', limits, 10);
    assert.equal(third.ok, false);
    assert.equal(!third.ok && third.reason, 'rate_requests');
    assert.equal(limiter.admit('b', limits, 10).ok, true, 'another client has its own quota');
    now += 50_000; // the next minute
    assert.equal(limiter.admit('a', limits, 70).ok, true);
    const chars = limiter.admit('a', limits, 11);
    assert.equal(!chars.ok && chars.reason, 'rate_chars');
    assert.equal(!chars.ok && chars.window.remaining, 10);
    assert.equal(!chars.ok && chars.window.resetSeconds, 12 * 3600 - 60);
    assert.equal(limiter.admit('a', limits, 10).ok, true, 'a request that fits what is left passes');
    now = Date.UTC(2026, 0, 2, 0, 0, 1); // the next UTC day
    assert.equal(limiter.admit('a', limits, 100).ok, true);
    assert.equal(limiter.pruneEnded(), 2, "b's minute and day windows ended");
    store.close();
  });

  test('a busy client takes its quota in slices of 1%: exact headers, one write a slice, the unused part given back on close', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const store = KeyStore.open(keyDbPath(tempDir()));
    const used = () =>
      (store.db.prepare("SELECT used FROM usage WHERE client = 'a' AND window = 'minute'").get() as { used: number })
        .used;
    let limiter = new Limiter(store.db, () => now);
    const limits = { reqPerMinute: 1000, charsPerDay: 0 };
    for (let i = 1; i <= 10; i++) {
      const a = limiter.admit('a', limits, 5);
      assert.equal(a.ok && a.window?.remaining, 1000 - i);
    }
    assert.equal(used(), 10, 'the first request reserved 10 (1% of 1000); nine more were admitted from memory');
    limiter.admit('a', limits, 5);
    assert.equal(used(), 20, 'the eleventh took the next slice');
    // Another process sharing the file sees the reservation as used, so the two never pass the limit.
    const other = new Limiter(store.db, () => now);
    assert.equal(other.admit('a', limits, 5).ok && used(), 30);
    limiter.close();
    assert.equal(used(), 21, 'the first gave back its 9 unused');
    other.close();
    assert.equal(used(), 12, 'the second gave back its 9 unused: 12 requests admitted in all');
    // A small limit is reserved one request at a time: exact across processes.
    limiter = new Limiter(store.db, () => now);
    const small = { reqPerMinute: 2, charsPerDay: 0 };
    assert.equal(limiter.admit('b', small, 1).ok, true);
    assert.equal(new Limiter(store.db, () => now).admit('b', small, 1).ok, true);
    assert.equal(limiter.admit('b', small, 1).ok, false);
    store.close();
  });

  test('unlimited clients are not written at all', () => {
    const store = KeyStore.open(keyDbPath(tempDir()));
    const limiter = new Limiter(store.db);
    for (let i = 0; i < 3; i++)
      assert.deepEqual(limiter.admit('a', { reqPerMinute: 0, charsPerDay: 0 }, 5), { ok: true });
    assert.equal((store.db.prepare('SELECT count(*) AS n FROM usage').get() as { n: number }).n, 0);
    store.close();
  });

  test('processes sharing the file never admit more than the limit together', async () => {
    const dir = tempDir();
    KeyStore.open(keyDbPath(dir)).close();
    const worker = path.join(import.meta.dirname, '..', 'helpers', 'limiter-client.ts');
    const run = () =>
      new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', worker, keyDbPath(dir), '40', '50'], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.on('error', reject);
        child.on('close', (code) =>
          code === 0 ? resolve(Number(out)) : reject(new Error(`limiter client exited ${code}`)),
        );
      });
    const admitted = await Promise.all([run(), run(), run()]);
    // 3 processes x 50 tries at a limit of 40 per minute; a minute boundary in the middle would allow 80.
    const total = admitted.reduce((a, b) => a + b, 0);
    assert.ok(total === 40 || total === 80, `admitted ${admitted.join('+')} = ${total}`);
  });
});

describe('a server with --api-keys', () => {
  const cfg = tinyConfig('token', 'target');
  let modelDir: string;
  let dataDir: string;
  let server: TaskmoeServer;
  let admin: KeyStore;
  const settings = (over: Partial<ServerSettings> = {}): ServerSettings => ({
    ...resolveSettings({}, {}),
    modelDir,
    dataDir,
    workers: 1,
    warm: 'all',
    ...over,
  });
  const translate = (body: object, remoteAddress = '127.0.0.1') =>
    server.app.inject({ method: 'POST', url: '/translate', payload: body, remoteAddress });
  const q = { q: 'Save the file', source: 'en', target: 'de' };

  before(async () => {
    modelDir = await randomCheckpoint(cfg, 11);
    dataDir = tempDir();
    server = await createServer(settings({ apiKeys: true }));
    await expectServerBackend(server);
    // The operator's connection, as `taskmoe keys` would open it while the server runs.
    admin = KeyStore.open(keyDbPath(dataDir));
  });
  after(async () => {
    admin.close();
    await server.shutdown();
  });

  test('answers 403 without a key, with an empty, malformed or unknown one, and 200 with a valid one', async () => {
    const missing = await translate(q);
    assert.equal(missing.statusCode, 403);
    assert.match(missing.json().error, /requires an api_key/);
    assert.equal(
      (await translate({ ...q, api_key: '' })).statusCode,
      403,
      'LibreTranslate clients send "" when they have no key',
    );
    const malformed = await translate({ ...q, api_key: 'bad key!' });
    assert.equal(malformed.statusCode, 403);
    assert.match(malformed.json().error, /malformed/);
    const unknown = await translate({ ...q, api_key: '00000000-0000-4000-8000-000000000000' });
    assert.match(unknown.json().error, /not a valid key/);
    const key = admin.add({ name: 'ok' }).key;
    const ok = await translate({ ...q, api_key: key });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(typeof ok.json().translatedText, 'string');
    assert.equal(
      (await translate({ ...q, apiKey: key })).statusCode,
      200,
      "the libretranslate npm client's field name",
    );
    const metrics = await server.metrics.registry.metrics();
    assert.match(metrics, /taskmoe_rejected_total\{reason="key_missing"\} 2/);
    assert.match(metrics, /taskmoe_rejected_total\{reason="key_invalid"\} 2/);
    assert.ok(!metrics.includes(key), 'no metric is labelled by key');
  });

  test('a key removed with `taskmoe keys remove` is refused at once', async () => {
    const key = admin.add().key;
    assert.equal((await translate({ ...q, api_key: key })).statusCode, 200);
    const removed = await runCli(['keys', 'remove', key, '--data-dir', dataDir]);
    assert.equal(removed.code, 0, removed.stderr);
    const after = await translate({ ...q, api_key: key });
    assert.equal(after.statusCode, 403);
    assert.match(after.json().error, /unknown or removed/);
  });

  test('the pair-in-URL route is guarded too, and routes without translation work are not', async () => {
    assert.equal(
      (await server.app.inject({ method: 'POST', url: '/translate/en/de', payload: { q: 'Quit' } })).statusCode,
      403,
    );
    assert.equal((await server.app.inject('/languages')).statusCode, 200);
    assert.equal((await server.app.inject('/healthz')).statusCode, 200);
  });

  test('/detect and /translate_file are guarded too; a file counts its characters; /frontend/settings says a key is required', async () => {
    const settings = (await server.app.inject('/frontend/settings')).json();
    assert.equal(settings.keyRequired, true);
    assert.equal(settings.apiKeys, true);
    assert.equal(
      (await server.app.inject({ method: 'POST', url: '/detect', payload: { q: 'Datei speichern' } })).statusCode,
      403,
    );
    const upload = (key?: string) => {
      const form = new FormData();
      form.append('source', 'en');
      form.append('target', 'de');
      if (key !== undefined) form.append('api_key', key);
      form.append('file', new Blob(['Save the file\nQuit\n']), 'app.txt'); // 19 characters
      return server.app.inject({ method: 'POST', url: '/translate_file', payload: form });
    };
    const refused = await upload();
    assert.equal(refused.statusCode, 403, refused.body);
    const key = admin.add({ charsPerDay: 30 }).key;
    const ok = await upload(key);
    assert.equal(ok.statusCode, 200, ok.body);
    assert.match(ok.json().translatedFileUrl, /\/download_file\//);
    const second = await upload(key);
    assert.equal(second.statusCode, 429, 'a second 19-character file does not fit in 30 a day');
    assert.match(second.json().error, /11 left today, this request has 19/);
  });

  test("a key's own requests per minute: 429 with Retry-After and X-RateLimit-* headers", async () => {
    const key = admin.add({ reqPerMinute: 2 }).key;
    const first = await translate({ ...q, api_key: key });
    assert.equal(first.headers['x-ratelimit-limit'], '2');
    assert.equal(first.headers['x-ratelimit-remaining'], '1');
    assert.equal((await translate({ ...q, api_key: key })).statusCode, 200);
    const refused = await translate({ ...q, api_key: key });
    assert.equal(refused.statusCode, 429);
    assert.match(refused.json().error, /2 requests per minute/);
    const retry = Number(refused.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 60, `retry-after ${retry}`);
    assert.equal(refused.headers['x-ratelimit-remaining'], '0');
    assert.equal(refused.headers['x-ratelimit-reset'], String(retry));
    assert.match(await server.metrics.registry.metrics(), /taskmoe_rejected_total\{reason="rate_requests"\} 1/);
  });

  test("a key's own characters per day count every text of q", async () => {
    const key = admin.add({ charsPerDay: 30 }).key;
    assert.equal((await translate({ ...q, q: ['Save the file', 'Quit'], api_key: key })).statusCode, 200); // 17 chars
    const refused = await translate({ ...q, q: 'Print the document', api_key: key }); // 18 more: 35 > 30
    assert.equal(refused.statusCode, 429);
    assert.match(refused.json().error, /30 characters per day .*13 left today/);
    assert.equal(
      (await translate({ ...q, q: 'Open', api_key: key })).statusCode,
      200,
      'what is left can still be used',
    );
  });

  test('concurrent requests never take a key past its limit', async () => {
    const key = admin.add({ reqPerMinute: 5 }).key;
    const answers = await Promise.all(Array.from({ length: 20 }, () => translate({ ...q, api_key: key })));
    const codes = answers.map((a) => a.statusCode);
    const ok = codes.filter((c) => c === 200).length;
    // Exactly 5, unless the minute turned over during the burst.
    assert.ok(ok === 5 || ok === 10, `200s: ${ok}, codes ${codes.join(',')}`);
    assert.equal(codes.filter((c) => c === 429).length, 20 - ok);
  });
});

describe('a server with per-address limits and no keys', () => {
  test('behind a proxy: X-Forwarded-For names the client only with --trust-proxy', async () => {
    const modelDir = await randomCheckpoint(tinyConfig('token', 'target'), 12);
    const q = { q: 'Quit', source: 'en', target: 'de' };
    // Two clients behind one proxy at 10.0.0.1, one request per minute each.
    const via = (s: TaskmoeServer, client: string) =>
      s.app.inject({
        method: 'POST',
        url: '/translate',
        payload: q,
        remoteAddress: '10.0.0.1',
        headers: { 'x-forwarded-for': client },
      });
    for (const trustProxy of ['', '10.0.0.0/8']) {
      const server = await createServer({
        ...resolveSettings({}, {}),
        modelDir,
        dataDir: tempDir(),
        workers: 1,
        warm: 'all',
        reqPerMinute: 1,
        trustProxy,
      });
      await server.ready;
      try {
        assert.equal((await via(server, '192.0.2.1')).statusCode, 200);
        assert.equal(
          (await via(server, '192.0.2.2')).statusCode,
          trustProxy ? 200 : 429,
          `trustProxy "${trustProxy}": the second client ${trustProxy ? 'has its own limit' : "shares the proxy's"}`,
        );
      } finally {
        await server.shutdown();
      }
    }
  });

  test("limits each address, keeps its counts across a restart, and still honours a key's own limits", async () => {
    const modelDir = await randomCheckpoint(tinyConfig('token', 'target'), 11);
    const dataDir = tempDir();
    // 'Quit' is 4 characters: two requests use 8 of the day's 10.
    const settings = {
      ...resolveSettings({}, {}),
      modelDir,
      dataDir,
      workers: 1,
      warm: 'all',
      reqPerMinute: 2,
      charsPerDay: 10,
    };
    const q = { q: 'Quit', source: 'en', target: 'de' };
    const from = (s: TaskmoeServer, remoteAddress: string, body: object = q) =>
      s.app.inject({ method: 'POST', url: '/translate', payload: body, remoteAddress });
    let server = await createServer(settings);
    await server.ready;
    try {
      assert.equal((await from(server, '10.0.0.1')).statusCode, 200);
      assert.equal((await from(server, '10.0.0.2')).statusCode, 200);
      assert.equal((await from(server, '10.0.0.1')).statusCode, 200);
      assert.equal((await from(server, '10.0.0.1')).statusCode, 429);
    } finally {
      await server.shutdown();
    }
    server = await createServer(settings);
    await server.ready;
    try {
      const refused = await from(server, '10.0.0.1');
      assert.equal(refused.statusCode, 429, 'the restarted server remembers what 10.0.0.1 used');
      // Whichever window is hit (the minute may have turned over during the restart), the day's characters are still counted.
      assert.match(refused.json().error, /(2 requests per minute|10 characters per day .*2 left today)/);
      assert.equal((await from(server, '10.0.0.2')).statusCode, 200, 'another address has its own quota');
      const admin = KeyStore.open(keyDbPath(dataDir));
      const key = admin.add({ reqPerMinute: 0, charsPerDay: 0 }).key;
      admin.close();
      for (let i = 0; i < 4; i++)
        assert.equal(
          (await from(server, '10.0.0.1', { ...q, api_key: key })).statusCode,
          200,
          'a key with 0 (unlimited) is not held to the address limits',
        );
      const bad = await from(server, '10.0.0.3', { ...q, api_key: 'no-such-key-here' });
      assert.equal(bad.statusCode, 403, 'an unknown key is an error even when keys are optional');
    } finally {
      await server.shutdown();
    }
  });

  test('a server whose key database cannot be opened does not start, and says where it looked', async () => {
    const modelDir = await randomCheckpoint(tinyConfig('token', 'target'), 11);
    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, '');
    await assert.rejects(
      createServer({ ...resolveSettings({}, {}), modelDir, dataDir: file, workers: 1, apiKeys: true }),
      new RegExp(`cannot open the API key database at ${keyDbPath(file)}`),
    );
  });
});

describe('taskmoe keys', () => {
  test('add, list and remove, with usage errors on exit 2', async () => {
    const dataDir = tempDir();
    const added = await runCli([
      'keys',
      'add',
      '--req-per-minute',
      '7',
      '--chars-per-day',
      '900',
      '--name',
      'team a',
      '--data-dir',
      dataDir,
    ]);
    assert.equal(added.code, 0, added.stderr);
    const key = added.stdout.trim();
    assert.match(key, /^[0-9a-f-]{36}$/);
    const listed = await runCli(['keys', 'list', '--json', '--data-dir', dataDir]);
    assert.deepEqual(
      JSON.parse(listed.stdout).map((k: { key: string; name: string; reqPerMinute: number; charsPerDay: number }) => [
        k.key,
        k.name,
        k.reqPerMinute,
        k.charsPerDay,
      ]),
      [[key, 'team a', 7, 900]],
    );
    const bad = await runCli(['keys', 'add', '--req-per-minute', 'many', '--data-dir', dataDir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--req-per-minute must be a non-negative integer/);
    assert.equal((await runCli(['keys', 'remove', key, '--data-dir', dataDir])).code, 0);
    const again = await runCli(['keys', 'remove', key, '--data-dir', dataDir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no key/);
  });
});
