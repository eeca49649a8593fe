import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader, MANIFEST_FILE, toFloat16 } from '../../src/models/checkpoint.ts';
import { initWeights } from '../../src/models/init.ts';
import { Translator } from '../../src/translator/index.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { randomCheckpoint, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

async function roundTrip(dtype: 'float32' | 'float16', tolerance: number): Promise<number> {
  const cfg = tinyConfig('token', 'target');
  const dir = await randomCheckpoint(cfg, 3, dtype);
  const reader = await CheckpointReader.open(dir);
  assert.deepEqual(reader.config, cfg);
  assert.equal(reader.dtype, dtype);
  const original = initWeights(cfg, 3);
  const loaded = await reader.read(original.keys());
  for (const [name, t] of original) {
    const a = t.dataSync();
    const b = loaded.get(name)!.dataSync();
    assert.deepEqual(loaded.get(name)!.shape, t.shape, name);
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i] - b[i]) <= tolerance * Math.max(1, Math.abs(a[i])), `${name}[${i}]: ${a[i]} vs ${b[i]}`);
    }
  }
  tf.dispose([...original.values(), ...loaded.values()]);
  return fs.readdirSync(dir).filter((f) => f.endsWith('.bin')).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
}

test('a checkpoint round-trips every tensor exactly in float32, and to half precision in float16 at half the size', async () => {
  const f32 = await roundTrip('float32', 0);
  const f16 = await roundTrip('float16', 1 / 1024);
  assert.equal(f16 * 2, f32);
});

test('float16 conversion rounds to nearest even and keeps specials', () => {
  const bits = toFloat16(new Float32Array([0, -0, 1, -2, 65504, 1e6, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24, Infinity, NaN]));
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1); 1 + 3*2^-11 rounds up to 1 + 2^-9.
  assert.deepEqual(Array.from(bits), [0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0x3c00, 0x3c02, 0x0001, 0x7c00, 0x7e00]);
});

test('the manifest is TensorFlow.js\'s weights-manifest format, decodable by tf.io.decodeWeights', async () => {
  const dir = await randomCheckpoint(tinyConfig('dense', 'dense'));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
  const data = Buffer.concat(manifest[0].paths.map((p: string) => fs.readFileSync(path.join(dir, p))));
  const tensors = tf.io.decodeWeights(data.buffer.slice(data.byteOffset, data.byteOffset + data.length), manifest[0].weights);
  assert.deepEqual(tensors.embed.shape, [1000, 32]);
  tf.dispose(Object.values(tensors));
});

/** Makes a checkpoint, breaks it with `damage`, and expects opening it to fail with a message matching `message`. */
async function refuses(damage: (dir: string) => void, message: RegExp): Promise<void> {
  const dir = await randomCheckpoint(tinyConfig('token', 'target'));
  damage(dir);
  await assert.rejects(CheckpointReader.open(dir), message);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests edit arbitrary JSON in place
const editJson = (file: string, edit: (o: any) => void) => {
  const o = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(o);
  fs.writeFileSync(file, JSON.stringify(o));
};

test('a checkpoint with a missing file is refused, naming the file', async () => {
  await refuses((d) => fs.rmSync(path.join(d, 'config.json')), /missing file .*config\.json/);
  await refuses((d) => fs.rmSync(path.join(d, MANIFEST_FILE)), /missing file .*weights_manifest\.json/);
  await refuses((d) => fs.rmSync(path.join(d, 'tokenizer.model')), /missing file tokenizer\.model/);
  await refuses((d) => fs.rmSync(path.join(d, 'group1-shard1of1.bin')), /missing shard file group1-shard1of1\.bin/);
});

test('a tensor with the wrong shape is refused, naming the tensor', async () => {
  await refuses(
    (d) => editJson(path.join(d, MANIFEST_FILE), (m) => {
      const e = m[0].weights.find((w: { name: string }) => w.name === 'decoder.layers.0.selfAttn.wq');
      e.shape = [e.shape[1] * 2, e.shape[0] / 2];
    }),
    /tensor "decoder\.layers\.0\.selfAttn\.wq" has shape \[64,16\].*expected \[32,32\]/,
  );
  await refuses((d) => editJson(path.join(d, 'config.json'), (c) => (c.dFF = 64)), /has shape .* expected .*from config\.json/);
});

test('a truncated shard is refused, naming the shard', async () => {
  await refuses((d) => {
    const shard = path.join(d, 'group1-shard1of1.bin');
    fs.truncateSync(shard, fs.statSync(shard).size - 10);
  }, /group1-shard1of1\.bin hold \d+ bytes but the manifest needs \d+ \(truncated/);
});

test('an unknown routing kind and other bad configs are refused, naming the field', async () => {
  await refuses((d) => editJson(path.join(d, 'config.json'), (c) => (c.routing.decoder = 'expert-choice')),
    /unknown routing kind "expert-choice" for "routing\.decoder"; expected one of dense, token, sentence, target, pair/);
  await refuses((d) => editJson(path.join(d, 'config.json'), (c) => (c.moe.topK = 9)), /"moe\.topK" \(9\) exceeds "moe\.numExperts" \(6\)/);
  await refuses((d) => editJson(path.join(d, 'config.json'), (c) => (c.pairs = ['en-xx'])), /pair "en-xx"/);
  await refuses((d) => fs.writeFileSync(path.join(d, 'config.json'), '{"vocabSize": 10,'), /config\.json: invalid JSON/);
});

test('a checkpoint whose vocabulary size does not match its tokenizer is refused, naming both files', async () => {
  const dir = await randomCheckpoint(tinyConfig('token', 'target', { vocabSize: 1200 }));
  await assert.rejects(Translator.load(dir), /config\.json: vocabSize 1200 does not match .*tokenizer\.model \(1000 pieces\)/);
});
