import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.ts';
import { FIXTURE_TOKENIZER, tempDir, tinyConfig } from '../helpers/engine.ts';
import { countParams } from '../../src/models/inspect.ts';
import { tensorShapes } from '../../src/models/config.ts';
import { subnetworkConfig } from '../../src/models/extract.ts';

const work = tempDir('taskmoe-cli-');
const cfg = tinyConfig('token', 'target', { languages: ['en', 'de', 'fr', 'ja'] });
const { tokenizer: _omitted, ...cfgWithoutTokenizer } = cfg;
const cfgFile = path.join(work, 'cfg.json');
fs.writeFileSync(cfgFile, JSON.stringify(cfgWithoutTokenizer));
const full = path.join(work, 'full');
const sub = path.join(work, 'sub-de');

test('init, inspect, extract and translate work end to end', async () => {
  let r = await runCli([
    'init',
    '--config',
    cfgFile,
    '--tokenizer',
    FIXTURE_TOKENIZER,
    '--out',
    full,
    '--seed',
    '3',
    '--dtype',
    'float16',
  ]);
  assert.equal(r.code, 0, r.stderr);

  r = await runCli(['inspect', full, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.params, countParams(tensorShapes(cfg)));
  assert.equal(report.bytes, report.params.total * 2, 'float16 weights take 2 bytes each');
  const de = report.subnetworks.find((s: { tasks: { decoder?: string } }) => s.tasks.decoder === 'de');
  assert.deepEqual(de.params, countParams(tensorShapes(subnetworkConfig(cfg, { source: 'en', target: 'de' }))));
  assert.deepEqual(de.pairs, ['en-de', 'fr-de']);

  r = await runCli(['extract', '--model', full, '--source', 'en', '--target', 'de', '--out', sub]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['inspect', sub, '--json']);
  const extracted = JSON.parse(r.stdout);
  assert.deepEqual(extracted.params, de.params, 'the extracted checkpoint has the size inspect predicted');
  assert.deepEqual(extracted.extracted, { decoder: 'de' });

  // stdin: one translation per line, in order; the full and extracted models agree.
  const lines = ['Could not open file', 'Save', '', 'Ein längerer Satz mit mehr Wörtern darin'];
  const a = await runCli(
    ['translate', '--model', full, '--source', 'en', '--target', 'de', '--max-length', '6'],
    lines.join('\n') + '\n',
  );
  const b = await runCli(
    ['translate', '--model', sub, '--source', 'en', '--target', 'de', '--max-length', '6'],
    lines.join('\n') + '\n',
  );
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout.split('\n').length, lines.length + 1);
  assert.equal(b.stdout, a.stdout);
  const one = await runCli([
    'translate',
    '--model',
    sub,
    '--source',
    'en',
    '--target',
    'de',
    '--max-length',
    '6',
    lines[3],
  ]);
  assert.equal(one.stdout, a.stdout.split('\n')[3] + '\n', 'a text alone translates as it does inside a batch');
  const beam = await runCli([
    'translate',
    '--model',
    full,
    '--source',
    'fr',
    '--target',
    'de',
    '--beam',
    '3',
    '--n-best',
    '2',
    'Bonjour',
  ]);
  assert.equal(beam.code, 0, beam.stderr);
  assert.equal(beam.stdout.split('\n').filter((l) => l.startsWith('\t')).length, 1, 'one alternative line');
});

test('mistakes are reported clearly with a non-zero exit status', async () => {
  let r = await runCli(['translate', '--model', sub, '--source', 'en', '--target', 'fr', 'hello']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unsupported pair en-fr; supported pairs: en-de, fr-de/);
  r = await runCli(['translate', '--model', full, '--source', 'en', '--target', 'xx', 'hello']);
  assert.match(r.stderr, /unknown target language "xx"; supported languages: en, de, fr, ja/);
  r = await runCli(['translate', '--model', full, '--source', 'en', '--target', 'de', '--beam', '0', 'hi']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--beam must be a positive integer/);
  r = await runCli([
    'extract',
    '--model',
    path.join(work, 'nope'),
    '--source',
    'en',
    '--target',
    'de',
    '--out',
    path.join(work, 'x'),
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nope: not a directory/);
  r = await runCli(['train', '--config', 'c.json', '--data', 'd', '--out', 'o', '--init-step', '3']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--init-step needs --init MODEL_DIR/);
  r = await runCli(['train', '--config', 'c.json', '--data', 'd', '--out', 'o', '--init', 'm', '--init-step', '1.5']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--init-step must be a non-negative integer, got "1.5"/);
  r = await runCli(['frobnicate']);
  assert.equal(r.code, 2);
  r = await runCli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /taskmoe translate/);
});

test('init refuses a config whose vocabulary size does not match the tokenizer', async () => {
  const bad = path.join(work, 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ ...cfg, vocabSize: 1200 }));
  const r = await runCli(['init', '--config', bad, '--tokenizer', FIXTURE_TOKENIZER, '--out', path.join(work, 'bad')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /vocabSize 1200 does not match .*tiny\.model \(1000 pieces\)/);
});

test('convert rewrites the weights as float32 or float16 without changing the model', async () => {
  const f16 = path.join(work, 'convert-f16');
  const f32 = path.join(work, 'convert-f32');
  const back = path.join(work, 'convert-back');
  let r = await runCli([
    'init',
    '--config',
    cfgFile,
    '--tokenizer',
    FIXTURE_TOKENIZER,
    '--out',
    f16,
    '--seed',
    '5',
    '--dtype',
    'float16',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['convert', '--model', f16, '--out', f32, '--dtype', 'float32']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse((await runCli(['inspect', f32, '--json'])).stdout);
  assert.equal(report.dtype, 'float32');
  assert.equal(report.bytes, report.params.total * 4);
  // float16 values are exact in float32, so converting back restores the very same bytes.
  r = await runCli(['convert', '--model', f32, '--out', back, '--dtype', 'float16']);
  assert.equal(r.code, 0, r.stderr);
  const shard = (dir: string) => fs.readFileSync(path.join(dir, 'group1-shard1of1.bin'));
  assert.ok(shard(back).equals(shard(f16)), 'float16 -> float32 -> float16 gives back the same weights');
  const a = await runCli([
    'translate',
    '--model',
    f16,
    '--source',
    'en',
    '--target',
    'de',
    '--max-length',
    '6',
    'Could not open file',
  ]);
  const b = await runCli([
    'translate',
    '--model',
    f32,
    '--source',
    'en',
    '--target',
    'de',
    '--max-length',
    '6',
    'Could not open file',
  ]);
  assert.equal(b.stdout, a.stdout);
  r = await runCli(['convert', '--model', f16, '--out', path.join(work, 'convert-none')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--dtype is required/);
});
