// `taskmoe import --from hf`: the command end to end, and the refusals of what it cannot import faithfully.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { importHf } from '../../src/import/hf-import.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { runCli } from '../helpers/cli.ts';

before(useTestBackend);

const MARIAN = path.join(import.meta.dirname, '../fixtures', 'hf', 'marian', 'model');

/** A copy of the Marian fixture, changed by `edit`, and the error importing it gives. */
async function importError(edit: (dir: string) => void, opts = { sources: ['en'], targets: ['de'] }): Promise<string> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'taskmoe-hf-bad-'));
  const src = path.join(tmp, 'src');
  await fsp.cp(MARIAN, src, { recursive: true });
  edit(src);
  try {
    await importHf(src, path.join(tmp, 'out'), opts);
    return '';
  } catch (err) {
    assert.ok(!fs.existsSync(path.join(tmp, 'out')), 'nothing is written');
    return (err as Error).message;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

const editConfig = (dir: string, f: (c: Record<string, unknown>) => void) => {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  f(c);
  fs.writeFileSync(file, JSON.stringify(c));
};

test('refuses an unsupported architecture, naming it', async () => {
  const msg = await importError((d) => editConfig(d, (c) => (c.architectures = ['T5ForConditionalGeneration'])));
  assert.match(msg, /unsupported architecture \["T5ForConditionalGeneration"\].*MarianMTModel/);
});

test('refuses a config field it does not understand, naming it', async () => {
  assert.match(await importError((d) => editConfig(d, (c) => (c.layernorm_embedding = true))), /unknown config field "layernorm_embedding"/);
  assert.match(await importError((d) => editConfig(d, (c) => (c.normalize_before = true))), /"normalize_before": true is not supported/);
  assert.match(await importError((d) => editConfig(d, (c) => (c.activation_function = 'tanh'))), /activation_function "tanh"/);
});

test('refuses a missing tokenizer file, naming it', async () => {
  assert.match(await importError((d) => fs.rmSync(path.join(d, 'target.spm'))), /missing tokenizer file .*target\.spm/);
});

test('refuses a tensor of the wrong shape, naming it', async () => {
  // config.json says 3 layers' worth of width: every weight then has the wrong shape; the first is named
  assert.match(await importError((d) => editConfig(d, (c) => (c.encoder_ffn_dim = c.decoder_ffn_dim = 48))), /tensor "model\.encoder\.layers\.0\.fc1\.weight" has shape \[64,32\], expected \[48,32\]/);
});

test('refuses pytorch_model.bin with a way out, and a Marian model without its pair', async () => {
  const msg = await importError((d) => {
    fs.renameSync(path.join(d, 'model.safetensors'), path.join(d, 'pytorch_model.bin'));
  });
  assert.match(msg, /only pytorch_model\.bin .*save_pretrained\(dir, safe_serialization=True\)/);
  const unnamed = (d: string) => {
    const file = path.join(d, 'tokenizer_config.json');
    const c = JSON.parse(fs.readFileSync(file, 'utf8'));
    delete c.source_lang;
    delete c.target_lang;
    fs.writeFileSync(file, JSON.stringify(c));
  };
  assert.match(await importError(unnamed, {} as never), /give --source XX --target YY/);
});

test('taskmoe import, then translate with the imported model', async () => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'taskmoe-hf-cli-'));
  const out = path.join(tmp, 'opus-en-de');
  const imported = await runCli(['import', '--from', 'hf', MARIAN, '--out', out, '--source', 'en', '--target', 'de']);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match(imported.stderr, /wrote .*opus-en-de: \d+ parameters, 2 languages, 1 pairs/);
  const run = await runCli(['translate', '--model', out, '--source', 'en', '--target', 'de', 'Hello world']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.split('\n').length, 2, 'one line of output');
  const bad = await runCli(['import', '--from', 'hf', path.join(tmp, 'nowhere'), '--out', path.join(tmp, 'x')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /missing file .*nowhere\/config\.json/);
  await fsp.rm(tmp, { recursive: true, force: true });
});
