// The text pipeline with stand-in translators (no model): segmentation, masks, html, .po, detection.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { detect, type LangIdProfile } from '../../src/text/detect.ts';
import { MarkupError, translateHtml } from '../../src/text/html.ts';
import { mask, repair, unmask } from '../../src/text/mask.ts';
import { translateTexts } from '../../src/text/pipeline.ts';
import { CatalogError, translateCatalog } from '../../src/text/po.ts';
import { assemble, segment, sentencesOf } from '../../src/text/segment.ts';
import { DEFAULT_MODEL_DIR } from '../../src/translator/index.ts';

const upper = async (ss: string[]) => ss.map((s) => s.toUpperCase());

test('segment keeps every character between sentences and cuts at line breaks', () => {
  const text = '  First one. Second one!\n\n\tThird line?  \r\nLast';
  const pieces = segment(text);
  assert.deepEqual(sentencesOf(pieces), ['First one.', 'Second one!', 'Third line?', 'Last']);
  assert.equal(assemble(pieces, sentencesOf(pieces)), text);
});

test('a sentence too long is cut at a clause boundary, then between words, never refused', () => {
  const long = 'alpha beta gamma delta, epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho';
  const pieces = segment(long, (s) => s.length > 30);
  const sentences = sentencesOf(pieces);
  assert.equal(sentences[0], 'alpha beta gamma delta,');
  assert.ok(
    sentences.every((s) => s.length <= 30),
    JSON.stringify(sentences),
  );
  assert.equal(assemble(pieces, sentences), long);
  // One word longer than the limit: cut between characters.
  const word = 'x'.repeat(100);
  const cut = sentencesOf(segment(word, (s) => s.length > 30));
  assert.ok(cut.length >= 4 && cut.join('') === word);
});

test('masks cover URLs, e-mails, paths, placeholders and entities, and restore exactly', async () => {
  const text =
    'See https://example.com/a?b=1, mail me@x.org, edit ~/.config/app.conf or /etc/hosts: %s %1$d %(name)s {0} {name} {{x}} ${y} &amp; 50% done.';
  const m = mask(text);
  assert.deepEqual(
    m.spans.map((s) => s.text),
    [
      'https://example.com/a?b=1',
      'me@x.org',
      '~/.config/app.conf',
      '/etc/hosts',
      '%(name)s',
      '{0}',
      '{name}',
      '{{x}}',
      '${y}',
      '&amp;',
    ],
  );
  // C format placeholders stay in the text (the model copies them), the rest become masks.
  assert.deepEqual(
    m.placeholders.map((s) => s.text),
    ['%s', '%1$d'],
  );
  assert.equal(m.text, 'See {0}, mail {1}, edit {2} or {3}: %s %1$d {4} {5} {6} {7} {8} {9} 50% done.');
  // A model that copies placeholders and upper-cases words.
  const upperWords = async (ss: string[]) =>
    ss.map((s) =>
      s
        .split(' ')
        .map((w) => (w.includes('%') ? w : w.toUpperCase()))
        .join(' '),
    );
  assert.equal(
    (await translateTexts([text], upperWords))[0],
    'SEE https://example.com/a?b=1, MAIL me@x.org, EDIT ~/.config/app.conf OR /etc/hosts: %s %1$d %(name)s {0} {name} {{x}} ${y} &amp; 50% DONE.',
  );
});

test('span edges: URLs with balanced parentheses, paths before a period, Windows paths with spaces, %{x}', () => {
  for (const [text, span] of [
    ['Visit (https://example.org/wiki/Foo_(bar)) now.', 'https://example.org/wiki/Foo_(bar)'],
    ['Read ../README.md.', '../README.md'],
    ['Open C:\\Program Files\\App\\app.exe please.', 'C:\\Program Files\\App\\app.exe'],
    ['Hello %{name}!', '%{name}'],
    ['Saved.&amp;Next line.', '&amp;'],
  ]) {
    const m = mask(text);
    assert.deepEqual(
      m.spans.map((x) => x.text),
      [span],
      text,
    );
    assert.equal(unmask(m.text, m), text);
  }
});

test('a dropped mask or placeholder comes back at the end of its sentence, a repeated one once; printf order is kept', () => {
  assert.equal(repair('Datei {1} geöffnet {1}.', 'File {0} opened in {1}.'), 'Datei {1} geöffnet {0}.');
  assert.equal(repair('%s %s Datei', 'File %s of %d'), '%s Datei %d');
  // Broken fragments the model made go; the source's own bare % stays.
  assert.equal(
    repair('Siehe %(url) für Hilfe zu 50%', 'See %(url)s for help on 50% of it'),
    'Siehe für Hilfe zu 50% %(url)s',
  );
  const m = mask('Copied %d of %s');
  // The model swapped the two unnumbered placeholders: their order is their meaning.
  assert.equal(unmask('%s of %d copied', m), '%d of %s copied');
  // Numbered ones may move.
  assert.equal(unmask('%2$s of %1$d copied', mask('Copied %1$d of %2$s')), '%2$s of %1$d copied');
});

test('html: tags, attributes, entities kept; inline tags around their words; code and script untouched', async () => {
  const html =
    '<div class="x"><h1>Title &amp; more</h1>\n<p>Hello <b>big <i>bold</i></b> <a href="https://x.org/?a=1&amp;b=2">link here</a>, with <code>x = 1</code>.<br>Next.</p><pre>keep me</pre><script>var a = "no";</script></div>';
  const [out] = await translateHtml([html], upper);
  assert.equal(
    out,
    '<div class="x"><h1>TITLE &amp; MORE</h1>\n<p>HELLO <b>BIG <i>BOLD</i></b> <a href="https://x.org/?a=1&amp;b=2">LINK HERE</a>, WITH <code>x = 1</code>.<br>NEXT.</p><pre>keep me</pre><script>var a = "no";</script></div>',
  );
  // A translator that loses the tag markers (masks {0} and {1}): the pieces between tags are translated one by one.
  const [fallback] = await translateHtml(['<p>Hello <b>big</b> world &lt; 3</p>'], async (ss) =>
    ss.map((s) => s.replace(/\{[01]\}/g, '').toUpperCase()),
  );
  assert.equal(fallback, '<p>HELLO <b>BIG</b> WORLD &lt; 3</p>');
  // What the model writes is escaped: no stray markup.
  const [escaped] = await translateHtml(['<p>Tom and Jerry</p>'], async (ss) => ss.map(() => 'Tom & <Jerry'));
  assert.equal(escaped, '<p>Tom &amp; &lt;Jerry</p>');
});

test('html: sentences of a paragraph batch as sentences; only those whose tags the model lost go again, piece by piece', async () => {
  const html = '<p>Open <b>the file</b> now. <a href="x">Save it.</a> Quit.</p>\n<p><i>Done.</i></p>';
  const calls: string[][] = [];
  // Loses the markers of any sentence that has them inside (edges never reach it).
  const lossy = async (ss: string[]) => {
    calls.push(ss);
    return ss.map((s) => `[${s.replace(/\{\d+\}/g, '')}]`);
  };
  const [out] = await translateHtml([html], lossy);
  assert.deepEqual(calls, [
    ['Open {0}the file{1} now.', 'Save it.', 'Quit.', 'Done.'],
    ['Open', 'the file', 'now.'],
  ]);
  assert.equal(out, '<p>[Open] <b>[the file]</b> [now.] <a href="x">[Save it.]</a> [Quit.]</p>\n<p><i>[Done.]</i></p>');
  // Markers the model keeps in order need no second call.
  calls.length = 0;
  const [kept] = await translateHtml([html], async (ss) => (calls.push(ss), ss.map((s) => s.toUpperCase())));
  assert.equal(calls.length, 1);
  assert.equal(kept, '<p>OPEN <b>THE FILE</b> NOW. <a href="x">SAVE IT.</a> QUIT.</p>\n<p><i>DONE.</i></p>');
  // A tag the model emptied (its words moved out) is a lost tag too.
  calls.length = 0;
  const emptying = async (ss: string[]) => (
    calls.push(ss),
    ss.map((s) => s.replace('{0}the file{1}', 'the file {0}{1}'))
  );
  const [moved] = await translateHtml(['<p>Open <b>the file</b> now.</p>'], emptying);
  assert.deepEqual(calls, [['Open {0}the file{1} now.'], ['Open', 'the file', 'now.']]);
  assert.equal(moved, '<p>Open <b>the file</b> now.</p>');
});

test('segmentation never cuts inside a mask and starts a sentence at a tag', () => {
  assert.deepEqual(sentencesOf(segment('Saved.{0} Next one. Version {1}.{2} Released.')), [
    'Saved.{0}',
    'Next one.',
    'Version {1}.{2}',
    'Released.',
  ]);
  assert.deepEqual(sentencesOf(segment('Open <b>the file.</b> <a>All files.</a> Quit.')), [
    'Open <b>the file.</b>',
    '<a>All files.</a>',
    'Quit.',
  ]);
});

test('html: broken markup is a MarkupError naming the line', async () => {
  for (const [html, line, what] of [
    ['<p>a\n<b>b</i> c</p>', 2, /<b> is never closed/],
    ['ok\n\n<b>x</b></div>', 3, /<\/div> closes no open element/],
    ['<a href="x" href="y">z</a>', 1, /duplicate attribute/],
  ] as const) {
    await assert.rejects(
      translateHtml([html], upper),
      (err: unknown) => err instanceof MarkupError && err.line === line && what.test(err.message),
    );
  }
});

test('po: untranslated entries filled, contexts, plurals, flags, comments kept; msgfmt -c accepts it', async (t) => {
  const src = fs.readFileSync(path.join(import.meta.dirname, '../fixtures/text/sample.po'), 'utf8');
  const out = await translateCatalog(src, 'ru', async (ss) => ss.map((s) => `[${s}]`));
  assert.match(out, /msgctxt "menu"\nmsgid "Open"\nmsgstr "\[Open\]"/);
  assert.match(
    out,
    /msgstr\[0\] "\[%d file selected\]"\nmsgstr\[1\] "\[%d files selected\]"\nmsgstr\[2\] "\[%d files selected\]"/,
  );
  assert.match(out, /#, c-format\nmsgid "Cannot open file %s: %s\\n"\nmsgstr "\[Cannot open file %s: %s\]\\n"/);
  assert.match(out, /#\. TRANSLATORS: the window title/);
  assert.match(out, /msgstr "Schon übersetzt"/);
  assert.match(out, /#~ msgid "Old message"/);
  assert.match(out, /"Language: ru\\n"/);
  try {
    execFileSync('msgfmt', ['--version']);
  } catch {
    t.skip('msgfmt (gettext) is not installed');
    return;
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'po-')), 'out.po');
  fs.writeFileSync(file, out);
  execFileSync('msgfmt', ['-c', '-o', '/dev/null', file]);
});

test('po: entries come out in the input order, across contexts, numeric msgids, multi-line strings and obsolete previous msgids', async (t) => {
  const entries = [
    'msgid "Zoom"\nmsgstr ""',
    'msgctxt "menu"\nmsgid "Open"\nmsgstr ""',
    'msgid "42"\nmsgstr ""',
    'msgid ""\n"Two \\"quoted\\"\\t"\n"lines\\n"\nmsgstr ""',
    'msgctxt "verb"\nmsgid "Open"\nmsgstr ""',
    'msgid "Already"\nmsgstr "Schon"',
    'msgctxt "menu"\nmsgid "Close"\nmsgstr ""',
    'msgid "7"\nmsgstr ""',
    'msgid "Apple"\nmsgstr ""',
  ];
  const header = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n';
  const src = `${header}${entries.join('\n\n')}\n\n#~| msgid "Older"\n#~ msgid "Old"\n#~ msgstr "Alt"\n`;
  const out = await translateCatalog(src, 'de', async (ss) => ss.map((s) => `<${s}>`));
  const ids = [...out.matchAll(/^(?:#~ )?msgid "(.*)"$/gm)].map((m) => m[1]).filter((id) => id !== '');
  assert.deepEqual(ids, [
    'Zoom',
    'Open',
    '42',
    'Two \\"quoted\\"\\tlines\\n',
    'Open',
    'Already',
    'Close',
    '7',
    'Apple',
    'Old',
  ]);
  assert.match(out, /msgctxt "menu"\nmsgid "Open"\nmsgstr "<Open>"\n\nmsgid "42"/);
  assert.match(out, /#~\| msgid "Older"\n#~ msgid "Old"/);
  try {
    execFileSync('msgfmt', ['--version']);
  } catch {
    t.skip('msgfmt (gettext) is not installed');
    return;
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'po-')), 'out.po');
  fs.writeFileSync(file, out);
  execFileSync('msgfmt', ['-c', '-o', '/dev/null', file]);
});

test('po: a malformed catalog is a CatalogError naming the line', async () => {
  await assert.rejects(
    translateCatalog('msgid "a"\nmsgstr "b\n', 'de', upper),
    (e: unknown) => e instanceof CatalogError && e.line === 2,
  );
  await assert.rejects(
    translateCatalog('msgid "a"\nmsgstr ""\n\nnonsense here\n', 'de', upper),
    (e: unknown) => e instanceof CatalogError && e.line === 4,
  );
});

test("detection picks the language among the model's, best first, with confidences", () => {
  const profile = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'langid.json'), 'utf8')) as LangIdProfile;
  const cases: Record<string, string> = {
    en: 'The file could not be opened.',
    de: 'Die Datei konnte nicht geöffnet werden.',
    fr: "Impossible d'ouvrir le fichier.",
    es: 'No se pudo abrir el archivo.',
    ru: 'Не удалось открыть файл.',
    uk: 'Не вдалося відкрити файл.',
    sv: 'Filen kunde inte öppnas.',
  };
  for (const [lang, text] of Object.entries(cases)) {
    const d = detect(profile, text);
    assert.equal(d[0].language, lang, `${text}: ${JSON.stringify(d.slice(0, 2))}`);
    assert.ok(d[0].confidence > 50 && d.length === profile.languages.length);
  }
  assert.equal(detect(profile, 'Die Datei', ['en', 'fr']).length, 2);
});

test("taskmoe translate's lines: a line longer than the model takes is cut, not refused", async () => {
  const { Translator } = await import('../../src/translator/index.ts');
  const { translateLines } = await import('../../src/text/translate-lines.ts');
  const { useTestBackend } = await import('../helpers/backend.ts');
  await useTestBackend();
  const translator = await Translator.load(DEFAULT_MODEL_DIR, { source: 'en', target: 'de' });
  try {
    const long = 'Open the file and save it, then close the window; '.repeat(12).trim();
    assert.ok(translator.tokenizer.encodeSource(long, 'de').length > translator.model.config.maxLength);
    assert.throws(() => translator.translate([long], { source: 'en', target: 'de' }), /tokens long/);
    const [out, short] = await translateLines(translator, [long, 'Quit'], { source: 'en', target: 'de' }, {});
    assert.ok(/\p{L}{3}/u.test(out.text) && !out.text.includes('\n'), out.text);
    assert.ok(/\p{L}/u.test(short.text));
  } finally {
    translator.dispose();
  }
});
