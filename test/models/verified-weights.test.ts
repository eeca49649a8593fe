// Verified weights: checksums written by every checkpoint writer and checked on load, NaN and
// infinities refused naming the tensor, and `serve` / `translate` refusing a corrupt checkpoint.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { averageCheckpoints } from '../../src/models/average.ts';
import { CheckpointReader, MANIFEST_FILE } from '../../src/models/checkpoint.ts';
import { verifyCheckpoint } from '../../src/models/verify.ts';
import { createServer } from '../../src/server/app.ts';
import { resolveSettings } from '../../src/server/settings.ts';
import { DEFAULT_MODEL_DIR, Translator } from '../../src/translator/index.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { runCli } from '../helpers/cli.ts';
import { randomCheckpoint, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const SHARD = 'group1-shard1of1.bin';
const manifestOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'));
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Checksums the manifest records, checked against the files. */
function assertChecksummed(dir: string): void {
  for (const group of manifestOf(dir)) {
    assert.equal(group.sha256?.length, group.paths.length, `${dir}: one SHA-256 per shard`);
    group.paths.forEach((p: string, i: number) => assert.equal(group.sha256[i], sha256(path.join(dir, p)), `${dir}/${p}`));
  }
}

/** Flips one bit in the middle of the shard: same size, different bytes. */
function flipBit(dir: string): void {
  const file = path.join(dir, SHARD);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length >> 1] ^= 0x10;
  fs.writeFileSync(file, bytes);
}

/** Overwrites the whole shard with float16 NaNs (0x7e00), as a broken converter would. */
function fillWithNaN(dir: string): void {
  const file = path.join(dir, SHARD);
  fs.writeFileSync(file, Buffer.alloc(fs.statSync(file).size, Buffer.from([0x00, 0x7e])));
}

/** Makes the checkpoint look like one written before checksums were recorded. */
function dropChecksums(dir: string): void {
  const m = manifestOf(dir);
  for (const g of m) delete g.sha256;
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(m));
}

test('every checkpoint writer records a SHA-256 per shard: init, convert, extract, average (the trainer writes through the same writer)', async () => {
  const cfg = tinyConfig('token', 'target');
  const a = await randomCheckpoint(cfg, 1, 'float16');
  const b = await randomCheckpoint(cfg, 2, 'float16');
  assertChecksummed(a);
  const avg = path.join(path.dirname(a), 'avg');
  await averageCheckpoints([a, b], avg, undefined, () => {});
  assertChecksummed(avg);
  const f32 = path.join(path.dirname(a), 'f32');
  let r = await runCli(['convert', '--model', a, '--out', f32, '--dtype', 'float32']);
  assert.equal(r.code, 0, r.stderr);
  assertChecksummed(f32);
  const sub = path.join(path.dirname(a), 'sub');
  r = await runCli(['extract', '--model', a, '--source', 'en', '--target', 'de', '--out', sub]);
  assert.equal(r.code, 0, r.stderr);
  assertChecksummed(sub);
});

test('the shipped demo model records its checksum and verifies', async () => {
  assertChecksummed(DEFAULT_MODEL_DIR);
  const warnings: string[] = [];
  await verifyCheckpoint(await CheckpointReader.open(DEFAULT_MODEL_DIR), (w) => warnings.push(w));
  assert.deepEqual(warnings, []);
});

test('a shard with flipped bits is refused by its checksum, naming the shard', async () => {
  const dir = await randomCheckpoint(tinyConfig('token', 'target'), 3, 'float16');
  flipBit(dir);
  await assert.rejects(verifyCheckpoint(await CheckpointReader.open(dir), () => {}),
    /shard group1-shard1of1\.bin has SHA-256 [0-9a-f]{64}, but weights_manifest\.json records [0-9a-f]{64} \(corrupt or modified shard\)/);
  await assert.rejects(Translator.load(dir, undefined, () => {}), /SHA-256/);
});

test('NaN and infinite weights are refused naming the tensor, checksums or not; a checkpoint without checksums loads with a warning', async () => {
  const cfg = tinyConfig('token', 'target');
  const nan16 = await randomCheckpoint(cfg, 4, 'float16');
  fillWithNaN(nan16);
  dropChecksums(nan16);
  const warnings: string[] = [];
  await assert.rejects(verifyCheckpoint(await CheckpointReader.open(nan16), (w) => warnings.push(w)), /tensor "embed" holds NaN at index 0 \(corrupt weights\)/);
  assert.match(warnings.join('\n'), /records no SHA-256 for group1-shard1of1\.bin/);
  // A single infinity in float32 storage, in a tensor past the first: read() refuses it too.
  const inf32 = await randomCheckpoint(cfg, 5, 'float32');
  dropChecksums(inf32);
  const reader = await CheckpointReader.open(inf32);
  const names = [...reader.shapes.keys()];
  const victim = names[3];
  const offset = names.slice(0, 3).reduce((s, n) => s + reader.storedBytes(n), 0) + 4 * 2;
  const fd = fs.openSync(path.join(inf32, SHARD), 'r+');
  fs.writeSync(fd, Buffer.from(new Float32Array([-Infinity]).buffer), 0, 4, offset);
  fs.closeSync(fd);
  const message = new RegExp(`tensor "${victim.replace(/\./g, '\\.')}" holds -Infinity at index 2`);
  await assert.rejects(verifyCheckpoint(reader, () => {}), message);
  await assert.rejects(reader.read([victim]), message);
  // Unharmed and without checksums: accepted, with the warning.
  const old = await randomCheckpoint(cfg, 6, 'float16');
  dropChecksums(old);
  const oldWarnings: string[] = [];
  const translator = await Translator.load(old, undefined, (w) => oldWarnings.push(w));
  translator.dispose();
  assert.equal(oldWarnings.length, 1);
  assert.match(oldWarnings[0], /not verified/);
});

test('createServer refuses a corrupt checkpoint or a tokenizer without a configured language tag, before it could listen', async () => {
  const cfg = tinyConfig('token', 'target');
  const flipped = await randomCheckpoint(cfg, 7, 'float16');
  flipBit(flipped);
  const settings = (modelDir: string) => ({ ...resolveSettings({}, {}), modelDir, workers: 1, warm: 'all' });
  await assert.rejects(createServer(settings(flipped)), /SHA-256/);
  // Defect 7: "zz" is configured, but the tokenizer has no <2zz> piece.
  const noTag = await randomCheckpoint(tinyConfig('token', 'target', { languages: ['en', 'de', 'fr', 'ja', 'zz'], pairs: ['en-de', 'de-en', 'en-zz'] }), 8);
  await assert.rejects(createServer(settings(noTag)), /config\.json lists languages whose tags .*tokenizer\.model lacks: <2zz>/);
});

test('`serve` and `translate` exit 1 with a clear message on a corrupt checkpoint; serve never listens', async () => {
  const dir = await randomCheckpoint(tinyConfig('token', 'target'), 9, 'float16');
  fillWithNaN(dir);
  const t = await runCli(['translate', '--model', dir, '--source', 'en', '--target', 'de', 'Save as']);
  assert.equal(t.code, 1, t.stdout);
  assert.equal(t.stdout, '');
  assert.match(t.stderr, /shard group1-shard1of1\.bin has SHA-256/);
  dropChecksums(dir);
  const s = await runCli(['serve', '--model', dir, '--port', '0', '--host', '127.0.0.1', '--workers', '1']);
  assert.equal(s.code, 1, s.stderr);
  assert.match(s.stderr, /tensor "embed" holds NaN at index 0/);
  assert.doesNotMatch(s.stderr, /serving|listening/i);
});
