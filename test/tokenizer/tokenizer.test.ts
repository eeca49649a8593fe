import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/tokenizer/index.ts';
import { trainTokenizer } from '../../src/tokenizer/train.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/spm/tiny.model', import.meta.url));
// trainTokenizer's layout: pad, unk, bos, eos, then the <2xx> tags (en first), then 256 byte pieces.
const FIXTURE_LANGUAGES = ['en', 'de', 'fr', 'ja', 'ru', 'zh'];
const FIRST_BYTE_PIECE_ID = 4 + FIXTURE_LANGUAGES.length;

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'taskmoe-tokenizer-test-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('Tokenizer on the fixture model', () => {
  let tok: Tokenizer;
  before(async () => {
    tok = await Tokenizer.load(FIXTURE);
  });

  test('reads the vocabulary size and special ids from the model', () => {
    assert.equal(tok.vocabSize, 1000);
    assert.deepEqual([tok.padId, tok.unkId, tok.bosId, tok.eosId], [0, 1, 2, 3]);
  });

  for (const [script, text] of [
    ['ASCII', 'Cannot open file "%s": permission denied'],
    ['German', 'Die Größe der Datei übersteigt das Maximum für Straßennamen.'],
    ['Japanese', 'ファイルを開けません。権限がありません。'],
  ]) {
    test(`round-trips ${script} text`, () => {
      const ids = tok.encode(text!);
      assert.ok(ids.length > 0);
      assert.ok(!ids.includes(tok.unkId), 'byte fallback should leave nothing unknown');
      assert.equal(tok.decode(ids), text);
    });
  }

  test('spells characters outside the vocabulary as UTF-8 byte pieces and decodes them back', () => {
    const ids = tok.encode('🦄');
    const bytePieces = [...Buffer.from('🦄', 'utf8')].map((byte) => FIRST_BYTE_PIECE_ID + byte);
    assert.deepEqual(ids.slice(-4), bytePieces);
    assert.equal(tok.decode(ids), '🦄');
  });

  test('decode drops pad, bos and eos', () => {
    const text = 'Datei speichern';
    const ids = [tok.bosId, ...tok.encode(text), tok.eosId, tok.padId, tok.padId];
    assert.equal(tok.decode(ids), text);
  });

  test('decode refuses ids outside the vocabulary', () => {
    assert.throws(() => tok.decode([5, tok.vocabSize]), /1000 is outside the vocabulary/);
    assert.throws(() => tok.decode([-1]), RangeError);
  });

  test('every corpus language has its own tag id', () => {
    const ids = FIXTURE_LANGUAGES.map((lang) => tok.languageTagId(lang));
    assert.deepEqual(ids, [4, 5, 6, 7, 8, 9]);
  });

  test('encodeSource puts the target-language tag first and EOS last', () => {
    const text = 'Save the file?';
    const ids = tok.encodeSource(text, 'de');
    assert.equal(ids[0], tok.languageTagId('de'));
    assert.equal(ids.at(-1), tok.eosId);
    assert.deepEqual(ids.slice(1, -1), tok.encode(text));
  });

  test('an unknown language tag is an error naming the tag', () => {
    assert.throws(() => tok.languageTagId('ko'), /<2ko> is not in the tokenizer vocabulary/);
    assert.throws(() => tok.encodeSource('hello', 'ko'), /<2ko>/);
  });
});

describe('Tokenizer.load refuses bad model files', () => {
  test('a missing file', async () => {
    const path = join(tmp, 'does-not-exist.model');
    await assert.rejects(
      Tokenizer.load(path),
      (err: Error) => err.message.includes(path) && /not found/.test(err.message),
    );
  });

  test('a file of random bytes', async () => {
    const path = join(tmp, 'garbage.model');
    await writeFile(path, randomBytes(4096));
    await assert.rejects(Tokenizer.load(path), (err: Error) =>
      err.message.includes(`invalid sentencepiece model ${path}`),
    );
  });

  test('a truncated model', async () => {
    const path = join(tmp, 'truncated.model');
    const model = await readFile(FIXTURE);
    await writeFile(path, model.subarray(0, model.length / 2));
    await assert.rejects(Tokenizer.load(path), (err: Error) => err.message.includes(path));
  });
});

describe('trainTokenizer', () => {
  const NOUNS = ['file', 'folder', 'printer', 'window', 'network', 'server', 'user', 'password', 'disk', 'device'];
  const NOMEN = [
    'Datei',
    'Ordner',
    'Drucker',
    'Fenster',
    'Netzwerk',
    'Server',
    'Benutzer',
    'Passwort',
    'Platte',
    'Gerät',
  ];
  const VERBS = ['open', 'close', 'delete', 'rename', 'find', 'save', 'copy', 'move', 'check', 'load'];
  const VERBEN = [
    'öffnen',
    'schließen',
    'löschen',
    'umbenennen',
    'finden',
    'speichern',
    'kopieren',
    'verschieben',
    'prüfen',
    'laden',
  ];
  const GOOD_PAIRS = NOUNS.length * VERBS.length * 3;

  /** A small en-de corpus of GOOD_PAIRS distinct pairs plus malformed lines, and an en-fr file. */
  async function writeCorpus(dir: string): Promise<void> {
    const lines: string[] = [];
    for (const [n, noun] of NOUNS.entries()) {
      for (const [v, verb] of VERBS.entries()) {
        for (const count of [1, 2, 3]) {
          lines.push(`Cannot ${verb} ${count} ${noun}s\t${count} ${NOMEN[n]} nicht ${VERBEN[v]}`);
        }
      }
    }
    lines.push('no tab on this line', 'empty German side\t', '\tempty English side', 'two\ttabs\there');
    await writeFile(join(dir, 'en-de.tsv'), lines.join('\n') + '\n');
    await writeFile(join(dir, 'en-fr.tsv'), 'Open the file\tOuvrir le fichier\n');
  }

  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmp, 'corpus-'));
    await writeCorpus(dataDir);
  });

  test('produces a loadable model with the selected languages as single-piece tags', async () => {
    const out = join(tmp, 'train', 'de.model');
    // 262 of the pieces are taken by pad/unk/bos/eos, the two tags and the 256 byte pieces.
    const result = await trainTokenizer({ dataDir, out, vocabSize: 350, languages: ['de'] });

    assert.deepEqual(result.languages, ['en', 'de']);
    assert.equal(result.sentences, 2 * GOOD_PAIRS, 'malformed lines are skipped, en-fr is not used');
    const tok = await Tokenizer.load(out);
    assert.equal(tok.vocabSize, 350);
    assert.deepEqual([tok.padId, tok.unkId, tok.bosId, tok.eosId], [0, 1, 2, 3]);
    assert.deepEqual([tok.languageTagId('en'), tok.languageTagId('de')], [4, 5]);
    assert.throws(() => tok.languageTagId('fr'));
    // User-defined symbols are matched whole even inside running text.
    assert.ok(tok.encode('x <2de> y').includes(tok.languageTagId('de')));
    assert.equal(tok.decode(tok.encode('Datei nicht öffnen')), 'Datei nicht öffnen');

    const vocab = await readFile(join(tmp, 'train', 'de.vocab'), 'utf8');
    assert.match(vocab, /^<2de>\t0$/m);
  });

  test('samples at most sentencesPerLanguage per language, reproducibly for a seed', async () => {
    const train = (out: string, seed: number) =>
      trainTokenizer({ dataDir, out, vocabSize: 320, languages: ['de'], sentencesPerLanguage: 100, seed });
    const first = await train(join(tmp, 'seeded-a.model'), 7);
    await train(join(tmp, 'seeded-b.model'), 7);
    await train(join(tmp, 'seeded-c.model'), 8);

    assert.equal(first.sentences, 200);
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((s) => readFile(join(tmp, `seeded-${s}.model`))));
    assert.ok(a!.equals(b!), 'same seed, same model');
    assert.ok(!a!.equals(c!), 'another seed samples other sentences');
  });

  test('uses every pair file when no languages are given', async () => {
    const result = await trainTokenizer({ dataDir, out: join(tmp, 'all.model'), vocabSize: 350 });
    assert.deepEqual(result.languages, ['en', 'de', 'fr']);
  });

  test("learns from several corpus directories: their languages' union, each language's sentences from all of them", async () => {
    const more = await mkdtemp(join(tmp, 'corpus-more-'));
    await writeFile(join(more, 'en-ru.tsv'), 'Open the file\tОткрыть файл\n');
    await writeFile(join(more, 'en-fr.tsv'), 'Close the window\tFermer la fenêtre\n');
    const out = join(tmp, 'two.model');
    const result = await trainTokenizer({ dataDir: [dataDir, more], out, vocabSize: 360 });
    assert.deepEqual(result.languages, ['en', 'de', 'fr', 'ru']);
    // English: the de file's distinct sentences and the two others (one shared); fr: one per directory; ru: one.
    assert.equal(result.sentences, GOOD_PAIRS + 2 + GOOD_PAIRS + 2 + 1);
    const tok = await Tokenizer.load(out);
    assert.equal(tok.decode(tok.encode('Открыть файл')), 'Открыть файл');
  });

  test('refuses a language without a pair file', async () => {
    await assert.rejects(
      trainTokenizer({ dataDir, out: join(tmp, 'x.model'), vocabSize: 350, languages: ['de', 'ko'] }),
      /has no file for: en-ko\.tsv/,
    );
  });

  test('passes on spm_train errors', async () => {
    await assert.rejects(
      trainTokenizer({ dataDir, out: join(tmp, 'big.model'), vocabSize: 100000, languages: ['de'] }),
      /spm_train failed[\s\S]*[Vv]ocabulary size/,
    );
  });

  test('says how to install spm_train when it is missing', async (t) => {
    const path = process.env.PATH;
    process.env.PATH = join(tmp, 'empty-bin');
    t.after(() => {
      process.env.PATH = path;
    });
    await assert.rejects(
      trainTokenizer({ dataDir, out: join(tmp, 'nobin.model'), vocabSize: 350, languages: ['de'] }),
      /apt-get install -y sentencepiece/,
    );
  });
});
