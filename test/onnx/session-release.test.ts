// ONNX Runtime sessions live as long as the model parts they were built from: the sub-network
// cache's eviction releases them (counted by OrtSession.live), not the garbage collector; and
// serving frees the tfjs copies of the encoder's and decoder's weights (and the embeddings' derived
// tensors) once the sessions hold them.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { decode } from '../../src/models/decoding.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import { SubnetworkCache } from '../../src/models/subnetwork-cache.ts';
import { OrtEngine } from '../../src/onnx/engine.ts';
import { OrtSession } from '../../src/onnx/session.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const EN_DE = { source: 'en', target: 'de' };
const EN_FR = { source: 'en', target: 'fr' };
const SOURCES = randomSources([6, 9], 1000, 5);
const OPTS = { bosId: 2, eosId: 3, maxLength: 8 };

test('evicting a sub-network releases its ONNX Runtime sessions; one in use keeps them until released', async () => {
  // Token/Target: one shared encoder entry, one decoder entry per target language.
  const reader = await CheckpointReader.open(await randomCheckpoint(tinyConfig('token', 'target')));
  const sizes = new SubnetworkCache(reader, { budgetBytes: 1 << 30 });
  (await sizes.acquire(EN_DE)).release();
  const bytes = Object.values(sizes.entryBytes());
  sizes.dispose();
  // room for the embeddings, the encoder and one decoder: a second decoder evicts the first
  const cache = new SubnetworkCache(reader, { budgetBytes: bytes.reduce((a, b) => a + b, 0) });
  const base = OrtSession.live;

  const de = await cache.acquire(EN_DE);
  decode(
    OrtEngine.of(de.model),
    SOURCES,
    SOURCES.map(() => EN_DE),
    OPTS,
  );
  assert.equal(OrtSession.live, base + 3, 'encoder, decoder start and decoder step');
  de.release();
  const fr = await cache.acquire(EN_FR);
  assert.deepEqual(cache.keys().sort(), ['decoder:fr', 'embeddings', 'encoder:*']);
  assert.equal(
    OrtSession.live,
    base + 1,
    "the evicted de decoder's two sessions are released; the shared encoder's stays",
  );
  decode(
    OrtEngine.of(fr.model),
    SOURCES,
    SOURCES.map(() => EN_FR),
    OPTS,
  );
  assert.equal(OrtSession.live, base + 3, 'the fr decoder shares the encoder session');

  // evicted while in use: the sessions stay until the lease is released
  const de2 = await cache.acquire(EN_DE);
  assert.equal(OrtSession.live, base + 3, 'fr is evicted but still leased');
  fr.release();
  assert.equal(OrtSession.live, base + 1, 'released at its last use');
  OrtEngine.of(de2.model);
  de2.release();
  assert.equal(OrtSession.live, base + 3);
  cache.dispose();
  assert.equal(OrtSession.live, base, 'disposing the cache releases every session');
});

test('serving frees the tfjs copies of the encoder and decoder once their sessions hold the weights', async () => {
  const model = await Seq2Seq.load(await CheckpointReader.open(await randomCheckpoint(tinyConfig('token', 'target'))));
  const dirs = SOURCES.map(() => EN_DE);
  const before = tf.memory().numTensors;
  const stackTensors = model.encoder.weights.size + model.decoder.weights.size;
  const bytes = model.bytes;
  const want = decode(model, SOURCES, dirs, OPTS).map((h) => h[0].tokens);
  const engine = OrtEngine.of(model, { dropTfjs: true });
  // the stacks' tensors, and the embeddings' transposed output table and position table
  assert.equal(
    tf.memory().numTensors,
    before - stackTensors - 2,
    'the stacks hold no tfjs tensors, the embeddings only their stored ones',
  );
  assert.equal(model.bytes, bytes, 'the parts still count the bytes their sessions hold');
  assert.deepEqual(
    decode(engine, SOURCES, dirs, OPTS).map((h) => h[0].tokens),
    want,
    'translations unchanged',
  );
  model.dispose();
  assert.equal(
    tf.memory().numTensors,
    before - model.embeddings.weights.size - stackTensors - 2,
    'the stored embeddings are freed at dispose',
  );
});
