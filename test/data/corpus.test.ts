import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { directionsOf, pairsFor, readCorpus, temperatureWeights } from '../../src/data/corpus.ts';

let corpusDir: string;

// en-de.tsv: CRLF endings, one line of each malformed kind, no newline at the end.
const GERMAN_LINES: Buffer[] = [
  Buffer.from('Hello\tHallo\r\n'), // kept
  Buffer.from('  Good morning \t Guten Morgen \r\n'), // kept, sides trimmed
  Buffer.from('no tab here\r\n'), // noTab
  Buffer.from('\tnur Deutsch\r\n'), // emptySide (English)
  Buffer.from('Only English\t   \r\n'), // emptySide (German, blank after trim)
  Buffer.concat([Buffer.from('Bad '), Buffer.from([0xff, 0xfe]), Buffer.from(' bytes\tSchlecht\r\n')]), // invalidUtf8
  Buffer.from('one\ttwo\tthree\r\n'), // extraTabs
  Buffer.from('\r\n'), // blank line: noTab
  Buffer.from('Street\tStraße\r\n'), // kept, multi-byte UTF-8 right after the bad line
  Buffer.from('Thank you\tDanke'), // kept, last line without a newline
];

before(async () => {
  corpusDir = await mkdtemp(join(tmpdir(), 'taskmoe-corpus-'));
  await writeFile(join(corpusDir, 'en-de.tsv'), Buffer.concat(GERMAN_LINES));
  await writeFile(join(corpusDir, 'en-fr.tsv'), 'Yes\tOui\nNo\tNon\n');
  // Not corpus files: ignored.
  await writeFile(join(corpusDir, 'notes.txt'), 'hello\tworld\n');
  await writeFile(join(corpusDir, 'fr-de.tsv'), 'Oui\tJa\n');
});

after(async () => {
  await rm(corpusDir, { recursive: true, force: true });
});

test('readCorpus keeps good lines and counts each kind of malformed line', async () => {
  const corpus = await readCorpus(corpusDir);
  assert.deepEqual(corpus.languages, ['en', 'de', 'fr']);
  assert.deepEqual(corpus.files.get('de'), [
    { source: 'Hello', target: 'Hallo' },
    { source: 'Good morning', target: 'Guten Morgen' },
    { source: 'Street', target: 'Straße' },
    { source: 'Thank you', target: 'Danke' },
  ]);
  assert.deepEqual(corpus.files.get('fr'), [
    { source: 'Yes', target: 'Oui' },
    { source: 'No', target: 'Non' },
  ]);
  const [german, french] = corpus.stats;
  assert.deepEqual(german, {
    file: join(corpusDir, 'en-de.tsv'),
    lines: GERMAN_LINES.length,
    kept: 4,
    skipped: { noTab: 2, emptySide: 2, invalidUtf8: 1, extraTabs: 1 },
  });
  // A trailing newline ends the last line rather than starting an empty one.
  assert.equal(french?.lines, 2);
  assert.equal(french?.kept, 2);
});

test('readCorpus restricts to the requested languages', async () => {
  const corpus = await readCorpus(corpusDir, { languages: ['en', 'fr'] });
  assert.deepEqual(corpus.languages, ['en', 'fr']);
  assert.deepEqual([...corpus.files.keys()], ['fr']);
  assert.equal(corpus.stats.length, 1);
});

test('readCorpus rejects a requested language without a file', async () => {
  await assert.rejects(readCorpus(corpusDir, { languages: ['de', 'es'] }), /en-es\.tsv/);
});

test('readCorpus stops each file after maxPerFile pairs', async () => {
  const corpus = await readCorpus(corpusDir, { maxPerFile: 3 });
  // The third kept German pair comes after the seven malformed lines.
  assert.deepEqual(
    corpus.files.get('de')?.map((pair) => pair.target),
    ['Hallo', 'Guten Morgen', 'Straße'],
  );
  assert.equal(corpus.stats[0]?.lines, GERMAN_LINES.length - 1);
  assert.equal(corpus.files.get('fr')?.length, 2);
});

test('readCorpus reassembles lines and characters split across read chunks', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'taskmoe-large-'));
  try {
    // ~1.2 MB: many 64 KiB stream chunks, so some boundaries fall inside lines and
    // inside the multi-byte "ß" and "ü".
    const count = 40000;
    const lines = Array.from({ length: count }, (_, i) => `street ${i}\tStraße über ${i}\r\n`);
    await writeFile(join(dir, 'en-de.tsv'), lines.join(''));
    const corpus = await readCorpus(dir);
    const pairs = corpus.files.get('de')!;
    assert.equal(pairs.length, count);
    pairs.forEach((pair, i) => {
      if (pair.source !== `street ${i}` || pair.target !== `Straße über ${i}`) {
        assert.fail(`line ${i} read as ${JSON.stringify(pair)}`);
      }
    });
    assert.equal(corpus.stats[0]?.skipped.invalidUtf8, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readCorpus names the directory when it is missing or has no corpus files', async () => {
  const missing = join(corpusDir, 'does-not-exist');
  await assert.rejects(readCorpus(missing), (error: Error) => error.message.includes(missing));
  const empty = await mkdtemp(join(tmpdir(), 'taskmoe-empty-'));
  try {
    await writeFile(join(empty, 'notes.txt'), 'nothing here');
    await assert.rejects(readCorpus(empty), (error: Error) => error.message.includes(empty));
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test('directionsOf gives both directions per non-English language in a stable order', () => {
  const expected = [
    { source: 'en', target: 'de' },
    { source: 'de', target: 'en' },
    { source: 'en', target: 'fr' },
    { source: 'fr', target: 'en' },
  ];
  assert.deepEqual(directionsOf(['en', 'de', 'fr']), expected);
  assert.deepEqual(directionsOf(['fr', 'de']), expected);
  assert.deepEqual(directionsOf(['en']), []);
});

test('pairsFor serves en-XX pairs as is and swaps them for XX-en', async () => {
  const { files } = await readCorpus(corpusDir, { languages: ['fr'] });
  assert.deepEqual(pairsFor(files, { source: 'en', target: 'fr' }), [
    { source: 'Yes', target: 'Oui' },
    { source: 'No', target: 'Non' },
  ]);
  assert.deepEqual(pairsFor(files, { source: 'fr', target: 'en' }), [
    { source: 'Oui', target: 'Yes' },
    { source: 'Non', target: 'No' },
  ]);
  assert.throws(() => pairsFor(files, { source: 'en', target: 'de' }), /de/);
  assert.throws(() => pairsFor(files, { source: 'fr', target: 'de' }), /English/);
  assert.throws(() => pairsFor(files, { source: 'en', target: 'en' }), /English/);
});

function sum(values: number[]): number {
  return values.reduce((total, x) => total + x, 0);
}

test('temperatureWeights at T=1 is proportional to size', () => {
  const weights = temperatureWeights([100, 300, 600], 1);
  [0.1, 0.3, 0.6].forEach((expected, i) => assert.ok(Math.abs(weights[i]! - expected) < 1e-12));
});

test('temperatureWeights sum to 1 and keep the order of sizes', () => {
  for (const T of [0.5, 1, 2, 5, 100]) {
    const weights = temperatureWeights([7, 1000, 30, 1], T);
    assert.ok(Math.abs(sum(weights) - 1) < 1e-12, `T=${T}`);
    assert.ok(weights[3]! < weights[0]! && weights[0]! < weights[2]! && weights[2]! < weights[1]!, `T=${T}`);
  }
});

test('temperatureWeights at T=5 flattens sizes to their fifth root', () => {
  // p_i / p_j = (n_i / n_j)^(1/T): 100 vs 900 examples → (1/9)^(1/5) ≈ 0.644 instead of 1/9.
  const [small, large] = temperatureWeights([100, 900], 5);
  assert.ok(Math.abs(small! / large! - (1 / 9) ** 0.2) < 1e-12);
  assert.ok(small! > 0.1, 'the small language gets more than its proportional share');
});

test('temperatureWeights approach uniform as T grows', () => {
  const weights = temperatureWeights([1, 10, 100, 100000], 1e6);
  weights.forEach((w) => assert.ok(Math.abs(w - 0.25) < 1e-4, `${w}`));
  assert.deepEqual(temperatureWeights([1, 10, 0], Infinity), [0.5, 0.5, 0]);
});

test('temperatureWeights rejects a non-positive temperature and an empty corpus', () => {
  assert.throws(() => temperatureWeights([1, 2], 0), /temperature/);
  assert.throws(() => temperatureWeights([1, -2], 1), /non-negative/);
  assert.throws(() => temperatureWeights([0, 0], 1), /empty/);
});
