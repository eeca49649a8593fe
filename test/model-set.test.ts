// A directory of checkpoints served as one model: pairs are the union, each pair's model a
// sub-network in one byte-bounded cache.
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { importHf } from '../src/import/hf-import.ts';
import { decode } from '../src/models/decoding.ts';
import { Seq2Seq } from '../src/models/model.ts';
import { ModelSet } from '../src/models/model-set.ts';
import { SubnetworkCache } from '../src/models/subnetwork-cache.ts';
import { useTestBackend } from './helpers/backend.ts';

before(useTestBackend);

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'hf');

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
