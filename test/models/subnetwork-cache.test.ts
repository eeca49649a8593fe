// The sub-network cache on real tiny checkpoints: which entries directions share, translations equal
// to a sub-network loaded on its own, eviction under a small budget that never frees an entry in use,
// one load for concurrent acquires, failed loads that leave nothing behind, and no leaked tensors.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader, type TensorSource, writeCheckpoint } from '../../src/models/checkpoint.ts';
import type { ModelConfig, Routing } from '../../src/models/config.ts';
import { decode } from '../../src/models/decoding.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import { type CacheEvent, SubnetworkCache } from '../../src/models/subnetwork-cache.ts';
import type { Direction } from '../../src/models/transformer.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { FIXTURE_TOKENIZER, randomCheckpoint, randomSources, tempDir, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const BIG = 1 << 30;
const SOURCES = randomSources([6, 9, 4], 1000, 5);
const EN_DE = { source: 'en', target: 'de' };
const FR_DE = { source: 'fr', target: 'de' };
const EN_FR = { source: 'en', target: 'fr' };

/** A TensorSource that counts the reads of each tensor and fails them while `failing` says so. */
class CountingSource implements TensorSource {
  readonly reads = new Map<string, number>();
  failing: (name: string) => boolean = () => false;

  constructor(private readonly inner: TensorSource) {}

  get config(): ModelConfig {
    return this.inner.config;
  }

  get shapes() {
    return this.inner.shapes;
  }

  async read(names: Iterable<string>): Promise<Map<string, tf.Tensor>> {
    const list = [...names];
    // Let concurrent acquires interleave before the load completes.
    await new Promise((resolve) => setImmediate(resolve));
    if (list.some((n) => this.failing(n))) throw new Error('disk read failed');
    for (const n of list) this.reads.set(n, (this.reads.get(n) ?? 0) + 1);
    return this.inner.read(list);
  }

  count(name: string): number {
    return this.reads.get(name) ?? 0;
  }
}

async function openSource(encoder: Routing, decoder: Routing): Promise<CountingSource> {
  return new CountingSource(await CheckpointReader.open(await randomCheckpoint(tinyConfig(encoder, decoder))));
}

function translate(model: Seq2Seq, dir: Direction, beamSize = 1): number[][] {
  const hyps = decode(model, SOURCES, SOURCES.map(() => dir), { bosId: 2, eosId: 3, beamSize, maxLength: 12 });
  return hyps.map((h) => h[0].tokens);
}

/** What the sub-network loaded on its own (Seq2Seq.loadSubnetwork) translates, freed afterwards. */
async function reference(source: TensorSource, dir: Direction, beamSize = 1): Promise<number[][]> {
  const model = await Seq2Seq.loadSubnetwork(source, dir);
  try {
    return translate(model, dir, beamSize);
  } finally {
    model.dispose();
  }
}

function directions(cfg: ModelConfig): Direction[] {
  return cfg.pairs.map((p) => {
    const [source, target] = p.split('-');
    return { source, target };
  });
}

describe('token/target routing', () => {
  let source: CountingSource;
  before(async () => {
    source = await openSource('token', 'target');
  });

  test('one encoder entry for every pair, one decoder entry per target language', async () => {
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    const enDe = await cache.acquire(EN_DE);
    assert.deepEqual(cache.keys().sort(), ['decoder:de', 'embeddings', 'encoder:*']);
    const frDe = await cache.acquire(FR_DE);
    assert.deepEqual(cache.keys().sort(), ['decoder:de', 'embeddings', 'encoder:*']);
    assert.equal(frDe.model.decoder, enDe.model.decoder);
    assert.equal(frDe.model.encoder, enDe.model.encoder);
    const enFr = await cache.acquire(EN_FR);
    assert.deepEqual(cache.keys().sort(), ['decoder:de', 'decoder:fr', 'embeddings', 'encoder:*']);
    assert.equal(enFr.model.encoder, enDe.model.encoder);
    assert.notEqual(enFr.model.decoder, enDe.model.decoder);
    const stats = cache.stats();
    assert.deepEqual([stats.entries, stats.misses, stats.hits, stats.evictions], [4, 4, 5, 0]);
    assert.equal(stats.bytes, enDe.model.bytes + enFr.model.decoder.bytes);
    assert.equal(stats.loadSeconds.length, 4);
    [enDe, frDe, enFr].forEach((l) => l.release());
    cache.dispose();
  });

  test('translations through a lease equal those of the sub-network loaded on its own', async () => {
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    for (const dir of [EN_DE, FR_DE, EN_FR, { source: 'de', target: 'en' }]) {
      const lease = await cache.acquire(dir);
      assert.deepEqual(translate(lease.model, dir), await reference(source, dir), `${dir.source}-${dir.target} greedy`);
      assert.deepEqual(translate(lease.model, dir, 3), await reference(source, dir, 3), `${dir.source}-${dir.target} beam`);
      lease.release();
    }
    cache.dispose();
  });

  test('a budget below all sub-networks evicts, serves every pair, and never frees an entry in use', async () => {
    const whole = await Seq2Seq.loadSubnetwork(source, EN_DE);
    // Room for the embeddings, the encoder and one decoder and a half: every new target evicts one.
    const budgetBytes = whole.embeddings.bytes + whole.encoder.bytes + Math.floor(whole.decoder.bytes * 1.5);
    whole.dispose();
    const events: CacheEvent[] = [];
    const cache = new SubnetworkCache(source, { budgetBytes, onEvent: (e) => events.push(e) });
    const held = await cache.acquire(EN_DE);
    const expected = await reference(source, EN_DE);
    for (const dir of [EN_FR, { source: 'en', target: 'ja' }, { source: 'de', target: 'en' }]) (await cache.acquire(dir)).release();
    assert.ok(!cache.keys().includes('decoder:de'), 'the held decoder was evicted from the cache');
    assert.equal(cache.stats().heldBytes, held.model.decoder.bytes);
    assert.deepEqual(translate(held.model, EN_DE), expected, 'the held lease still decodes');

    // Wanted again while held, the evicted decoder returns to the cache instead of loading twice.
    const misses = cache.stats().misses;
    const again = await cache.acquire(FR_DE);
    assert.equal(again.model.decoder, held.model.decoder);
    assert.equal(cache.stats().misses, misses);
    assert.equal(cache.stats().heldBytes, 0);
    again.release();
    held.release();

    for (const dir of directions(source.config)) {
      const lease = await cache.acquire(dir);
      assert.deepEqual(translate(lease.model, dir), await reference(source, dir), `${dir.source}-${dir.target}`);
      lease.release();
      assert.ok(cache.stats().bytes <= budgetBytes);
    }
    const stats = cache.stats();
    assert.ok(stats.evictions > 0);
    assert.equal(events.filter((e) => e.type === 'evict').length, stats.evictions);
    assert.equal(events.filter((e) => e.type === 'load').length, stats.misses);
    assert.ok(events.every((e) => e.type !== 'evict' || e.bytes > 0));
    cache.dispose();
  });

  test('release is idempotent: a second call does not take another lease\'s use', async () => {
    const whole = await Seq2Seq.loadSubnetwork(source, EN_DE);
    const budgetBytes = whole.embeddings.bytes + whole.encoder.bytes + Math.floor(whole.decoder.bytes * 1.5);
    whole.dispose();
    const cache = new SubnetworkCache(source, { budgetBytes });
    const first = await cache.acquire(EN_DE);
    const second = await cache.acquire(EN_DE);
    first.release();
    first.release();
    (await cache.acquire(EN_FR)).release();
    assert.ok(!cache.keys().includes('decoder:de'));
    assert.deepEqual(translate(second.model, EN_DE), await reference(source, EN_DE));
    second.release();
    cache.dispose();
  });

  test('concurrent acquires load each entry once', async () => {
    const counted = new CountingSource(source);
    const cache = new SubnetworkCache(counted, { budgetBytes: BIG });
    const leases = await Promise.all([EN_DE, EN_DE, FR_DE, EN_DE].map((d) => cache.acquire(d)));
    assert.equal(counted.count('embed'), 1);
    assert.equal(counted.count('encoder.lnF.g'), 1);
    assert.equal(counted.count('decoder.lnF.g'), 1);
    assert.deepEqual([cache.stats().misses, cache.stats().hits], [3, 9]);
    assert.ok(leases.every((l) => l.model.decoder === leases[0].model.decoder));
    leases.forEach((l) => l.release());
    cache.dispose();
  });

  test('after every lease is released and the cache disposed, no tensor is left', async () => {
    const baseline = tf.memory().numTensors;
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    await cache.warm([EN_DE, EN_FR]);
    assert.deepEqual(cache.keys().sort(), ['decoder:de', 'decoder:fr', 'embeddings', 'encoder:*']);
    const lease = await cache.acquire(FR_DE);
    translate(lease.model, FR_DE);
    // dispose() while a lease is held: its entries stay usable and are freed at its release.
    cache.dispose();
    assert.equal(cache.stats().entries, 0);
    assert.deepEqual(translate(lease.model, FR_DE), await reference(source, FR_DE));
    assert.ok(tf.memory().numTensors > baseline);
    lease.release();
    assert.equal(tf.memory().numTensors, baseline);
    await assert.rejects(cache.acquire(EN_DE), /disposed/);
  });

  test('warm hands each direction\'s model to prepare while it is held, and releases it after', async () => {
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    const dirs = [EN_DE, EN_FR];
    const outputs: number[][][] = [];
    await cache.warm(dirs, (model) => outputs.push(translate(model, dirs[outputs.length])));
    assert.deepEqual(outputs, [await reference(source, EN_DE), await reference(source, EN_FR)]);
    await assert.rejects(cache.warm([EN_DE], () => { throw new Error('prepare failed'); }), /prepare failed/);
    // Released after the failed prepare: dispose() frees every entry, none is left held.
    const baseline = tf.memory().numTensors;
    cache.dispose();
    assert.ok(tf.memory().numTensors < baseline);
    assert.equal(cache.stats().heldBytes, 0);
  });

  test('a failed load rejects every waiter, leaves nothing behind, and the next acquire retries', async () => {
    const baseline = tf.memory().numTensors;
    const counted = new CountingSource(source);
    counted.failing = (name) => name.startsWith('decoder.');
    const cache = new SubnetworkCache(counted, { budgetBytes: BIG });
    const attempts = await Promise.allSettled([cache.acquire(EN_DE), cache.acquire(FR_DE)]);
    assert.ok(attempts.every((a) => a.status === 'rejected' && /disk read failed/.test(String(a.reason))));
    assert.deepEqual(cache.keys().sort(), ['embeddings', 'encoder:*']);
    assert.equal(cache.stats().heldBytes, 0);
    counted.failing = () => false;
    const lease = await cache.acquire(EN_DE);
    assert.equal(counted.count('decoder.lnF.g'), 1);
    assert.deepEqual(translate(lease.model, EN_DE), await reference(source, EN_DE));
    lease.release();
    cache.dispose();
    assert.equal(tf.memory().numTensors, baseline);
  });

  test('an entry larger than the budget is served and shared while in use, never cached, and freed at its last release', async () => {
    const baseline = tf.memory().numTensors;
    const counted = new CountingSource(source);
    const cache = new SubnetworkCache(counted, { budgetBytes: 1 });
    const [a, b] = await Promise.all([cache.acquire(EN_DE), cache.acquire(FR_DE)]);
    assert.equal(a.model.decoder, b.model.decoder);
    assert.equal(counted.count('embed'), 1);
    assert.deepEqual(cache.keys(), []);
    assert.equal(cache.stats().heldBytes, a.model.bytes);
    a.release();
    assert.deepEqual(translate(b.model, FR_DE), await reference(source, FR_DE), 'still in use by the other lease');
    b.release();
    assert.equal(cache.stats().heldBytes, 0);
    assert.equal(tf.memory().numTensors, baseline);
    (await cache.acquire(EN_DE)).release();
    assert.equal(counted.count('embed'), 2, 'not cached, so loaded again');
  });

  test('refuses a direction the model does not serve', async () => {
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    await assert.rejects(cache.acquire({ source: 'en', target: 'xx' }), /does not serve en-xx/);
    assert.equal(cache.stats().misses, 0);
  });
});

describe('pair/pair routing', () => {
  test('encoder and decoder are extracted per pair', async () => {
    const source = await openSource('pair', 'pair');
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    const enDe = await cache.acquire(EN_DE);
    assert.deepEqual(cache.keys().sort(), ['decoder:en-de', 'embeddings', 'encoder:en-de']);
    const frDe = await cache.acquire(FR_DE);
    assert.deepEqual(cache.keys().sort(), ['decoder:en-de', 'decoder:fr-de', 'embeddings', 'encoder:en-de', 'encoder:fr-de']);
    assert.deepEqual(translate(enDe.model, EN_DE), await reference(source, EN_DE));
    assert.deepEqual(translate(frDe.model, FR_DE), await reference(source, FR_DE));
    enDe.release();
    frDe.release();
    cache.dispose();
  });
});

describe('dense model', () => {
  test('every pair shares one encoder and one decoder', async () => {
    const source = await openSource('dense', 'dense');
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    for (const dir of directions(source.config)) {
      const lease = await cache.acquire(dir);
      assert.deepEqual(translate(lease.model, dir), await reference(source, dir), `${dir.source}-${dir.target}`);
      lease.release();
    }
    assert.deepEqual(cache.keys().sort(), ['decoder:*', 'embeddings', 'encoder:*']);
    assert.equal(cache.stats().misses, 3);
    cache.dispose();
  });
});

describe('an already extracted checkpoint', () => {
  test('its extracted decoder is one shared entry, and other targets are refused', async () => {
    const full = await CheckpointReader.open(await randomCheckpoint(tinyConfig('token', 'target')));
    const sub = await Seq2Seq.loadSubnetwork(full, EN_DE);
    const dir = tempDir();
    await writeCheckpoint(dir, sub.config, sub.weights, FIXTURE_TOKENIZER);
    sub.dispose();
    const source = await CheckpointReader.open(dir);
    const cache = new SubnetworkCache(source, { budgetBytes: BIG });
    const enDe = await cache.acquire(EN_DE);
    const frDe = await cache.acquire(FR_DE);
    assert.deepEqual(cache.keys().sort(), ['decoder:*', 'embeddings', 'encoder:*']);
    assert.deepEqual(translate(frDe.model, FR_DE), await reference(full, FR_DE));
    await assert.rejects(cache.acquire(EN_FR), /does not serve en-fr/);
    enDe.release();
    frDe.release();
    cache.dispose();
  });
});
