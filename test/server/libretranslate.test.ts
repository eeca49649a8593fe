// LibreTranslate compatibility against a real listening server on the demo model: the npm
// `libretranslate` client unchanged, form and multipart bodies, CORS, every route and its errors,
// long text, spans that must not change, html, .po files, and pivot pairs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { translate as ltTranslate } from 'libretranslate';
import { type DefaultTreeAdapterTypes, parseFragment } from 'parse5';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import { resolveSettings } from '../../src/server/settings.ts';
import { DEFAULT_MODEL_DIR } from '../../src/translator/index.ts';
import { expectServerBackend } from '../helpers/server.ts';

let server: TaskmoeServer;
let url: string;

before(async () => {
  server = await createServer({
    ...resolveSettings({}, {}),
    modelDir: DEFAULT_MODEL_DIR,
    workers: 1,
    warm: 'none',
    timeoutMs: 300_000,
    maxFileBytes: 4096,
  });
  await expectServerBackend(server);
  await server.app.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.server.address() as { port: number };
  url = `http://127.0.0.1:${address.port}`;
});
after(() => server.shutdown());

const post = (route: string, body: unknown) =>
  fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
const hasWords = (s: unknown) => typeof s === 'string' && /\p{L}{2}/u.test(s);

describe('the libretranslate npm client, unchanged', () => {
  test('a string, an array, "auto", html', async () => {
    const one = await ltTranslate({ query: 'Could not open the file.', source: 'en', target: 'de', apiurl: url });
    assert.ok(hasWords(one) && one !== 'Could not open the file.', String(one));
    const many = await ltTranslate({
      query: ['Save the document', 'Quit'] as unknown as string,
      source: 'en',
      target: 'fr',
      apiurl: url,
    });
    assert.ok(Array.isArray(many) && many.length === 2 && many.every(hasWords), JSON.stringify(many));
    // The client's default source is "auto".
    const auto = await ltTranslate({ query: 'Die Datei konnte nicht gespeichert werden.', target: 'en', apiurl: url });
    assert.ok(hasWords(auto), String(auto));
    const html = await ltTranslate({
      query: '<p>Open <b>the file</b>.</p>',
      source: 'en',
      target: 'es',
      format: 'html',
      apiurl: url,
    });
    assert.match(html, /^<p>.*<b>.+<\/b>.*<\/p>$/s);
  });

  test('/languages lists every reachable target (through English too)', async () => {
    const languages = (await (await fetch(`${url}/languages`)).json()) as Array<{
      code: string;
      name: string;
      targets: string[];
    }>;
    const codes = languages.map((l) => l.code);
    for (const l of languages)
      assert.deepEqual([...l.targets].sort(), codes.filter((c) => c !== l.code).sort(), l.code);
    const info = (await (await fetch(`${url}/info`)).json()) as { pivot: { via: string; pairs: string[] } };
    assert.equal(info.pivot.via, 'en');
    assert.ok(info.pivot.pairs.includes('de-fr') && !info.pivot.pairs.includes('en-fr'));
  });
});

describe('bodies, fields and CORS', () => {
  test('form-urlencoded and multipart bodies, numbers as strings, unknown fields ignored', async () => {
    const form = await fetch(`${url}/translate`, {
      method: 'POST',
      body: new URLSearchParams({ q: 'Save as', source: 'en', target: 'de', apiKey: '', alternatives: '1' }),
    });
    assert.equal(form.status, 200, await form.clone().text());
    const fj = (await form.json()) as { translatedText: string; alternatives: string[] };
    assert.ok(hasWords(fj.translatedText) && fj.alternatives.length === 1);
    const fd = new FormData();
    fd.append('q', 'Print the page');
    fd.append('source', 'en');
    fd.append('target', 'sv');
    fd.append('somethingNew', 'x');
    const multi = await fetch(`${url}/translate`, { method: 'POST', body: fd });
    assert.equal(multi.status, 200, await multi.clone().text());
    assert.ok(hasWords(((await multi.json()) as { translatedText: string }).translatedText));
  });

  test('wrong types and values are 400s naming the field', async () => {
    for (const [body, re] of [
      [{ q: 'x', source: 'en', target: 'de', alternatives: 'two' }, /alternatives must be integer/],
      [{ q: 5, target: 'de' }, /q must be string/],
      [{ q: 'x', source: 'en', target: 'xx' }, /unknown target language "xx"/],
    ] as const) {
      const r = await post('/translate', body);
      assert.equal(r.status, 400);
      assert.match(((await r.json()) as { error: string }).error, re);
    }
  });

  test('a CORS preflight is answered for any origin', async () => {
    const r = await fetch(`${url}/translate`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://elsewhere.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    assert.match(r.headers.get('access-control-allow-methods') ?? '', /POST/);
    const get = await fetch(`${url}/languages`, { headers: { origin: 'https://elsewhere.example' } });
    assert.equal(get.headers.get('access-control-allow-origin'), '*');
  });
});

describe('text that must come back whole', () => {
  test('a 5000-character text of dev messages, lines kept', async () => {
    // English dev messages of gettext-mt (en-de), capitalised, without placeholders.
    const dev = fs
      .readFileSync(path.join(import.meta.dirname, '../fixtures/text/dev-en.txt'), 'utf8')
      .split('\n')
      .filter(Boolean);
    const lines: string[] = [];
    for (let i = 0; lines.join('\n').length < 4900; i++)
      lines.push(`${dev[i]}.${i % 3 === 0 ? ` ${dev[i + 500]}.` : ''}`);
    const text = lines.join('\n').slice(0, 5000);
    const r = await post('/translate', { q: text, source: 'en', target: 'de' });
    assert.equal(r.status, 200, await r.clone().text());
    const out = ((await r.json()) as { translatedText: string }).translatedText;
    assert.equal(out.split('\n').length, text.split('\n').length);
    assert.ok(out.split('\n').every(hasWords));
  });

  test('URLs, e-mails, paths and placeholders come out exactly as they went in', async () => {
    const spans = [
      'https://example.com/docs?id=3&lang=en',
      'help@example.org',
      '/usr/share/doc/taskmoe',
      '%s',
      '%(count)d',
      '{name}',
      '${HOME}',
      '&amp;',
    ];
    const q = `Visit ${spans[0]} or write to ${spans[1]}. ${spans[3]} files in ${spans[2]}, ${spans[4]} left for {name} in \${HOME} &amp; more.`;
    const r = await post('/translate', { q, source: 'en', target: 'fr' });
    const out = ((await r.json()) as { translatedText: string }).translatedText;
    for (const s of spans) assert.ok(out.includes(s), `${s} missing from ${out}`);
  });

  test('html with nested inline tags: well-formed, every tag and attribute kept, code untouched', async () => {
    const html =
      '<div id="main"><p>Click <a href="/x?a=1&amp;b=2" title="Go">the <b>big</b> button</a> to <i>continue</i>.</p><pre>ls -l</pre><p>Run <code>make install</code> now.</p></div>';
    const r = await post('/translate', { q: html, source: 'en', target: 'de', format: 'html' });
    assert.equal(r.status, 200, await r.clone().text());
    const out = ((await r.json()) as { translatedText: string }).translatedText;
    const tags = (h: string) => {
      const list: string[] = [];
      const walk = (n: DefaultTreeAdapterTypes.ParentNode) =>
        n.childNodes.forEach((c) => {
          if ('tagName' in c) {
            list.push(`${c.tagName}${JSON.stringify(c.attrs)}`);
            walk(c);
          }
        });
      walk(parseFragment(h));
      return list.sort();
    };
    assert.deepEqual(tags(out), tags(html));
    assert.ok(out.includes('<pre>ls -l</pre>') && out.includes('<code>make install</code>'), out);
    assert.match(out, /<b>[^<]+<\/b>/);
  });

  test('de -> fr goes through English, with alternatives', async () => {
    const r = await post('/translate', { q: 'Die Datei wurde gespeichert.', source: 'de', target: 'fr' });
    assert.equal(r.status, 200, await r.clone().text());
    assert.ok(hasWords(((await r.json()) as { translatedText: string }).translatedText));
    // Alternatives through English: the second hop's beam over the first hop's best English.
    const alt = await post('/translate', {
      q: ['Die Datei wurde gespeichert.', 'Beenden'],
      source: 'de',
      target: 'fr',
      alternatives: 2,
    });
    assert.equal(alt.status, 200, await alt.clone().text());
    const a = (await alt.json()) as { translatedText: string[]; alternatives: string[][] };
    assert.equal(a.alternatives.length, 2, JSON.stringify(a));
    for (const alts of a.alternatives) assert.ok(alts.length === 2 && alts.every(hasWords), JSON.stringify(a));
  });
});

describe('the other LibreTranslate routes', () => {
  test('/detect, "auto" with detectedLanguage, /frontend/settings, /suggest', async () => {
    const d = (await (await post('/detect', { q: 'Не удалось открыть файл.' })).json()) as Array<{
      language: string;
      confidence: number;
    }>;
    assert.equal(d[0].language, 'ru');
    assert.ok(d[0].confidence > d[1].confidence);
    const auto = (await (
      await post('/translate', { q: ['Öppna filen', 'Fichier introuvable'], source: 'auto', target: 'en' })
    ).json()) as { detectedLanguage: Array<{ language: string }> };
    assert.deepEqual(
      auto.detectedLanguage.map((x) => x.language),
      ['sv', 'fr'],
    );
    const settings = (await (await fetch(`${url}/frontend/settings`)).json()) as {
      charLimit: number;
      suggestions: boolean;
      supportedFilesFormat: string[];
    };
    assert.equal(settings.charLimit, 5000);
    assert.equal(settings.suggestions, false);
    assert.ok(settings.supportedFilesFormat.includes('.po'));
    const s = await post('/suggest', { q: 'a', s: 'b', source: 'en', target: 'de' });
    assert.equal(s.status, 403);
    assert.match(((await s.json()) as { error: string }).error, /Suggestions are disabled/);
  });

  const upload = (
    name: string,
    content: string | Buffer,
    fields: Record<string, string> = { source: 'en', target: 'de' },
  ) => {
    const fd = new FormData();
    fd.append('file', new Blob([typeof content === 'string' ? content : new Uint8Array(content)]), name);
    for (const [k, v] of Object.entries(fields)) fd.append(k, v);
    return fetch(`${url}/translate_file`, { method: 'POST', body: fd });
  };

  test('/translate_file: .txt, .html and a .po round trip that msgfmt -c accepts', async () => {
    const txt = await upload('notes.txt', 'Save the file.\nQuit the program.\n');
    assert.equal(txt.status, 200, await txt.clone().text());
    const link = ((await txt.json()) as { translatedFileUrl: string }).translatedFileUrl;
    assert.match(link, new RegExp(`^${url}/download_file/[0-9a-f-]{36}\\.txt$`));
    const got = await fetch(link);
    assert.equal(got.status, 200);
    assert.match(got.headers.get('content-disposition') ?? '', /notes\.de\.txt/);
    assert.equal((await got.text()).split('\n').length, 3);
    const html = await upload('page.html', '<p>Open <b>the file</b></p>');
    assert.match(
      await (await fetch(((await html.json()) as { translatedFileUrl: string }).translatedFileUrl)).text(),
      /^<p>.*<b>.+<\/b>.*<\/p>$/,
    );
    const po = await upload(
      'sample.po',
      fs.readFileSync(path.join(import.meta.dirname, '../fixtures/text/sample.po')),
      {
        source: 'en',
        target: 'uk',
      },
    );
    assert.equal(po.status, 200, await po.clone().text());
    const catalog = await (await fetch(((await po.json()) as { translatedFileUrl: string }).translatedFileUrl)).text();
    assert.match(catalog, /msgctxt "verb"\nmsgid "Open"\nmsgstr "[^"]+"/);
    assert.match(catalog, /msgstr\[2\] "[^"]*%d[^"]*"/);
    assert.match(catalog, /msgstr "Schon übersetzt"/);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lt-')), 'uk.po');
    fs.writeFileSync(file, catalog);
    try {
      execFileSync('msgfmt', ['-c', '-o', '/dev/null', file], { stdio: 'pipe' });
    } catch (err) {
      assert.fail(`msgfmt -c: ${(err as { stderr: Buffer }).stderr}\n${catalog}`);
    }
  });

  test('/translate_file and /download_file errors: malformed files name the line, oversize is 413, no path escapes', async () => {
    const badHtml = await upload('bad.html', '<p>one</p>\n<p>two <b>three</p>');
    assert.equal(badHtml.status, 400);
    assert.match(
      ((await badHtml.json()) as { error: string }).error,
      /malformed html: bad\.html: line 2: <b> is never closed/,
    );
    const badPo = await upload('bad.po', 'msgid "a"\nmsgstr ""\n\nmsgid "b\nmsgstr ""\n');
    assert.equal(badPo.status, 400);
    assert.match(
      ((await badPo.json()) as { error: string }).error,
      /malformed \.po catalog: bad\.po: line 4: unterminated string/,
    );
    const big = await upload('big.txt', 'word '.repeat(2000));
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { error: string }).error, /larger than the limit of 4096 bytes/);
    const odd = await upload('x.exe', 'MZ');
    assert.equal(odd.status, 400);
    assert.match(((await odd.json()) as { error: string }).error, /unsupported file type "\.exe"/);
    for (const name of ['..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', '00000000-0000-0000-0000-000000000000.txt']) {
      const r = await fetch(`${url}/download_file/${name}`);
      assert.ok(r.status === 400 || r.status === 404, `${name}: ${r.status}`);
      assert.doesNotMatch(await r.text(), /root:/);
    }
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  });
});
