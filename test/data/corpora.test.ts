// Several corpus directories read as one, and the trainer's refusals of bad data and configs.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { describeSkipped, readCorpus, temperatureWeights } from '../../src/data/corpus.ts';
import { Tokenizer } from '../../src/tokenizer/index.ts';
import { parseTrainConfig } from '../../src/train/config.ts';
import { BatchSampler, tokenizeCorpus } from '../../src/train/data.ts';
import { Rng } from '../../src/util/random.ts';
import { train } from '../../src/train/index.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { runCli } from '../helpers/cli.ts';
import { FIXTURE_TOKENIZER, tempDir } from '../helpers/engine.ts';
import { setUpTraining } from '../helpers/train.ts';

before(useTestBackend);

function corpusDir(files: Record<string, string>): string {
  const dir = tempDir('taskmoe-corpora-');
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const lines = (n: number, en: string, xx: string) =>
  Array.from({ length: n }, (_, i) => `${en} ${i}\t${xx} ${i}\n`).join('');

test("several directories read as one corpus: the union of languages, each language's pairs from every directory, cross-directory duplicates once", async () => {
  const a = corpusDir({ 'en-de.tsv': 'Open\tÖffnen\nSave\tSpeichern\n', 'en-fr.tsv': 'Yes\tOui\n' });
  const b = corpusDir({
    'en-de.tsv': 'Save\tSpeichern\nClose\tSchließen\nClose\tSchließen\n',
    'en-ru.tsv': 'No\tНет\n',
  });
  const corpus = await readCorpus([a, b]);
  assert.deepEqual(corpus.languages, ['en', 'de', 'fr', 'ru']);
  // B's "Save" is A's; B's own repeated "Close" is that file's business and stays.
  assert.deepEqual(
    corpus.files.get('de')!.map((p) => p.source),
    ['Open', 'Save', 'Close', 'Close'],
  );
  assert.deepEqual(
    corpus.stats.map((s) => [path.basename(path.dirname(s.file)) === path.basename(b), s.kept, s.duplicates]),
    [
      [false, 2, undefined],
      [true, 2, 1],
      [false, 1, undefined],
      [true, 1, undefined],
    ],
  );
  assert.deepEqual(describeSkipped(corpus.stats), [
    `${path.join(b, 'en-de.tsv')}: kept 2 of 3 lines; skipped 1 duplicate`,
  ]);
});

test('the sampling temperature applies over the directions of the union, sized by their combined pairs', async () => {
  const a = corpusDir({ 'en-de.tsv': lines(30, 'A', 'de'), 'en-fr.tsv': lines(5, 'A', 'fr') });
  const b = corpusDir({ 'en-de.tsv': lines(10, 'B', 'de'), 'en-ru.tsv': lines(20, 'B', 'ru') });
  const tok = await Tokenizer.load(FIXTURE_TOKENIZER);
  const pairs = ['en-de', 'de-en', 'en-fr', 'fr-en', 'en-ru', 'ru-en'];
  const examples = tokenizeCorpus(await readCorpus([a, b]), tok, pairs, 64);
  const sampler = new BatchSampler(examples, 5, 256, new Rng(1));
  assert.deepEqual(sampler.directions, pairs);
  assert.deepEqual(sampler.weights, temperatureWeights([40, 40, 5, 5, 20, 20], 5));
});

test('a directory without any en-XX.tsv is refused by name, even beside a good one', async () => {
  const good = corpusDir({ 'en-de.tsv': 'Open\tÖffnen\n' });
  const empty = corpusDir({ 'de-en.tsv': 'Öffnen\tOpen\n', 'notes.txt': 'x\n' });
  await assert.rejects(readCorpus([good, empty]), (err: Error) =>
    err.message.includes(`no en-XX.tsv files in corpus directory ${empty}`),
  );
  const { config, out } = setUpTraining();
  await assert.rejects(
    train({ config, data: [good, empty], out, steps: 1, log: () => {} }),
    new RegExp(`no en-XX\\.tsv files in corpus directory ${empty}`),
  );
});

test('a language no directory has a file for is named', async () => {
  const a = corpusDir({ 'en-de.tsv': 'Open\tÖffnen\n' });
  const b = corpusDir({ 'en-fr.tsv': 'Yes\tOui\n' });
  await assert.rejects(
    readCorpus([a, b], { languages: ['de', 'ru'] }),
    /none of the corpus directories .* has a file for: en-ru\.tsv/,
  );
});

test('the trainer reports the lines it skipped, per file', async () => {
  const { config, data, out } = setUpTraining();
  fs.appendFileSync(path.join(data, 'en-fr.tsv'), 'no tab here\n\tseulement\nOne\tUn\tExtra\n');
  const log: string[] = [];
  await train({ config, data, out, steps: 1, log: (l) => log.push(l) });
  assert.deepEqual(
    log.filter((l) => l.includes('skipped')),
    [`taskmoe train: ${path.join(data, 'en-fr.tsv')}: kept 8 of 11 lines; skipped 1 noTab, 1 emptySide, 1 extraTabs`],
  );
});

test('a config whose languages the tokenizer lacks names every missing <2xx> tag', async () => {
  const { config, data, out } = setUpTraining(
    {},
    { languages: ['en', 'de', 'fr', 'sv', 'uk'], pairs: ['en-de', 'de-en', 'en-sv', 'en-uk'] },
  );
  await assert.rejects(train({ config, data, out, steps: 1, log: () => {} }), (err: Error) => {
    assert.match(err.message, /lacks: <2sv>, <2uk>/);
    assert.ok(err.message.includes(config) && err.message.includes(FIXTURE_TOKENIZER));
    return true;
  });
});

test('"train.data" lists the corpus directories relative to the config, as --data DIR --data DIR does on the command line', async () => {
  const root = tempDir();
  const parsed = parseTrainConfig(
    {
      ...JSON.parse(fs.readFileSync(setUpTraining().config, 'utf8')),
      train: { tokenizer: FIXTURE_TOKENIZER, data: ['a', '/abs/b'] },
    },
    root,
  );
  assert.deepEqual(parsed.train.data, [path.join(root, 'a'), '/abs/b']);
  assert.throws(
    () => parseTrainConfig({ ...parsed.model, train: { data: 'a' } }, root),
    /"train\.data" must be a non-empty list of paths/,
  );

  const { config, data, out } = setUpTraining();
  const extra = corpusDir({ 'en-de.tsv': 'Print\tDrucken\nQuit\tBeenden\n' });
  const withList = path.join(path.dirname(config), 'with-data.json');
  fs.writeFileSync(
    withList,
    JSON.stringify({
      ...JSON.parse(fs.readFileSync(config, 'utf8')),
      train: { ...JSON.parse(fs.readFileSync(config, 'utf8')).train, data: ['data', extra] },
    }),
  );
  const log: string[] = [];
  await train({ config: withList, out: `${out}-list`, steps: 1, log: (l) => log.push(l) });
  assert.ok(log.includes('taskmoe train: en-de 10, de-en 10, en-fr 8, fr-en 8'), log.join('\n'));

  const cli = await runCli([
    'train',
    '--config',
    config,
    '--data',
    data,
    '--data',
    extra,
    '--out',
    `${out}-cli`,
    '--steps',
    '1',
  ]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stderr, /taskmoe train: en-de 10, de-en 10, en-fr 8, fr-en 8/);
});
