// A directory of checkpoints served as one model: pairs are the union, each pair's model a
// sub-network in one byte-bounded cache.
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { importHf } from '../../src/import/hf-import.ts';
import { decode } from '../../src/models/decoding.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import { ModelSet } from '../../src/models/model-set.ts';
import { SubnetworkCache } from '../../src/models/subnetwork-cache.ts';
import { useTestBackend } from '../helpers/backend.ts';

before(useTestBackend);

const FIXTURES = path.join(import.meta.dirname, '../fixtures', 'hf');

test('a directory of per-pair checkpoints: union of pairs, one cache keyed by member, evicted by bytes', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'taskmoe-set-'));
  await importHf(path.join(FIXTURES, 'marian', 'model'), path.join(dir, 'opus-en-de'), { sources: ['en'], targets: ['de'] });
  await importHf(path.join(FIXTURES, 'm2m100', 'model'), path.join(dir, 'm2m'), { sources: ['de'], targets: ['en', 'cs'] });
  const set = await ModelSet.open(dir);
  assert.deepEqual(set.members.map((m) => m.name), ['m2m', 'opus-en-de']);
  assert.deepEqual(set.pairs.sort(), ['de-cs', 'de-en', 'en-de']);
  assert.equal(set.memberFor({ source: 'en', target: 'de' })!.name, 'opus-en-de');
  assert.equal(set.memberFor({ source: 'fr', target: 'de' }), undefined);

  const loaded: string[] = [];
  const evicted: string[] = [];
  const one = await Seq2Seq.load(set.memberFor({ source: 'en', target: 'de' })!.reader);
  // a budget that holds one member's parts, not two
  const cache = new SubnetworkCache(set, {
    budgetBytes: Math.ceil(one.bytes * 1.5),
    onEvent: (e) => (e.type === 'load' ? loaded.push(e.key) : e.type === 'evict' ? evicted.push(e.key) : undefined),
  });
  const enDe = { source: 'en', target: 'de' };
  const src = [[5, 9, 13, 0]];
  const lease = await cache.acquire(enDe);
  const opts = { bosId: 228, eosId: 0, maxLength: 8 };
  assert.deepEqual(decode(lease.model, src, [enDe], opts), decode(one, src, [enDe], opts), 'the cached sub-network is the member');
  lease.release();
  assert.deepEqual(loaded.sort(), ['opus-en-de/decoder:*', 'opus-en-de/embeddings', 'opus-en-de/encoder:*']);
  (await cache.acquire({ source: 'de', target: 'en' })).release();
  assert.ok(loaded.includes('m2m/embeddings'));
  assert.ok(evicted.some((k) => k.startsWith('opus-en-de/')), `loading m2m evicted opus-en-de's parts: ${evicted}`);
  await assert.rejects(cache.acquire({ source: 'fr', target: 'de' }), /does not serve fr-de/);
  cache.dispose();
  one.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

test('taskmoe serve --model DIR of imported models: the pairs are the union, each served by its own model', async () => {
  const { createServer } = await import('../../src/server/app.ts');
  const { resolveSettings } = await import('../../src/server/settings.ts');
  const { Translator } = await import('../../src/translator/index.ts');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'taskmoe-set-serve-'));
  await importHf(path.join(FIXTURES, 'marian', 'model'), path.join(dir, 'opus-en-de'), { sources: ['en'], targets: ['de'] });
  await importHf(path.join(FIXTURES, 'm2m100', 'model'), path.join(dir, 'm2m'), { sources: ['de', 'en'], targets: ['en', 'cs'] });
  const { expectServerBackend } = await import('../helpers/server.ts');
  const server = await createServer({ ...resolveSettings({}, {}), modelDir: dir, workers: 1, warm: 'none' });
  await expectServerBackend(server);
  try {
    const languages = (await server.app.inject('/languages')).json() as { code: string; targets: string[] }[];
    assert.deepEqual(languages.map((l) => [l.code, l.targets.sort()]).sort(), [['cs', []], ['de', ['cs', 'en']], ['en', ['cs', 'de']]]);
    for (const [source, target, member] of [['en', 'de', 'opus-en-de'], ['de', 'en', 'm2m'], ['en', 'cs', 'm2m']]) {
      const res = await server.app.inject({ method: 'POST', url: '/translate', payload: { q: ['Hello world', 'Cancel'], source, target } });
      assert.equal(res.statusCode, 200, res.body);
      const alone = await Translator.load(path.join(dir, member), { source, target });
      assert.deepEqual(res.json().translatedText, alone.translate(['Hello world', 'Cancel'], { source, target }).map((t) => t.text), `${source}-${target}`);
      alone.dispose();
    }
    const bad = await server.app.inject({ method: 'POST', url: '/translate', payload: { q: 'x', source: 'cs', target: 'de' } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error, /unsupported pair cs-de/);
    const info = (await server.app.inject('/info')).json();
    assert.deepEqual(info.members.map((m: { name: string }) => m.name), ['m2m', 'opus-en-de']);
  } finally {
    await server.shutdown();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
