import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { DEFAULT_MODEL_DIR } from '../../src/translator/index.ts';
import { runCli } from '../helpers/cli.ts';

// Languages whose script is not Latin, among those gettext-mt has.
const NON_LATIN = new Set(['ru', 'uk', 'ja', 'ko', 'zh']);

test('the demo model is Token/Target over at least 6 languages <-> English, one not in Latin script, within 25 MB', async () => {
  const cfg = (await CheckpointReader.open(DEFAULT_MODEL_DIR)).config;
  assert.deepEqual(cfg.routing, { encoder: 'token', decoder: 'target' });
  const others = cfg.languages.filter((l) => l !== 'en');
  assert.ok(others.length >= 6, `${others.length} languages besides English`);
  for (const l of others) {
    assert.ok(cfg.pairs.includes(`en-${l}`) && cfg.pairs.includes(`${l}-en`), `both directions of en-${l}`);
  }
  assert.ok(others.some((l) => NON_LATIN.has(l)), 'a language not in Latin script');
  const bytes = fs.readdirSync(DEFAULT_MODEL_DIR).reduce((n, f) => n + fs.statSync(path.join(DEFAULT_MODEL_DIR, f)).size, 0);
  assert.ok(bytes <= 25e6, `${bytes} bytes on disk`);
});

test('the model card gives dev BLEU and chrF for every direction next to the copy baseline', async () => {
  const cfg = (await CheckpointReader.open(DEFAULT_MODEL_DIR)).config;
  const card = fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'README.md'), 'utf8');
  for (const pair of cfg.pairs) {
    const row = card.split('\n').find((l) => l.startsWith(`| ${pair} |`));
    assert.ok(row !== undefined, `a row for ${pair}`);
    const cells = row.split('|').slice(3, 7).map((c) => c.trim());
    for (const c of cells) assert.match(c, /^\d+\.\d\d$/, `${pair}: BLEU, chrF, copy BLEU and copy chrF in ${row}`);
  }
});

test('taskmoe translate uses the demo model when --model is not given', async () => {
  const text = 'Could not open file';
  const implicit = await runCli(['translate', '--source', 'en', '--target', 'de', text]);
  assert.equal(implicit.code, 0, implicit.stderr);
  const explicit = await runCli(['translate', '--model', DEFAULT_MODEL_DIR, '--source', 'en', '--target', 'de', text]);
  assert.equal(implicit.stdout, explicit.stdout);
  const out = implicit.stdout.trim();
  assert.ok(out.length > 0 && out !== text, `translated "${text}" to "${out}"`);
});
