// The playground at / in a real headless Chromium (Debian's, driven by playwright-core) against a
// real listening server: translate, detect, swap, a .po upload, keyboard-only use, hostile text,
// 413, API keys. Screenshots of each state go to test-output/playground/ (git-ignored).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import { KeyStore, keyDbPath } from '../../src/server/front-door/key-store.ts';
import { resolveSettings, type ServerSettings } from '../../src/server/settings.ts';
import { DEFAULT_MODEL_DIR } from '../../src/translator/index.ts';
import { launchChromium, screenshotDir } from '../helpers/browser.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { randomCheckpoint, tempDir, tinyConfig } from '../helpers/engine.ts';
import { expectServerBackend } from '../helpers/server.ts';

const shots = screenshotDir('playground');
let modelDir: string;
let browser: Browser;

async function listening(over: Partial<ServerSettings>): Promise<{ server: TaskmoeServer; url: string }> {
  const server = await createServer({
    ...resolveSettings({}, {}),
    modelDir,
    dataDir: tempDir(),
    workers: 1,
    warm: 'all',
    ...over,
  });
  await expectServerBackend(server);
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

async function open(url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on('pageerror', (err) => assert.fail(`page error: ${err.message}`));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

/** What the API answers for the same request, to compare with what the page shows. */
interface ApiAnswer {
  translatedText: string;
  alternatives?: string[];
  detectedLanguage?: { language: string; confidence: number };
}

async function apiTranslate(url: string, body: object): Promise<ApiAnswer> {
  const res = await fetch(`${url}/translate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return res.json();
}

// A string, not a function: tsx would wrap a function's inner functions in a helper the page lacks.
const LOWEST_CONTRAST = `(() => {
  const lum = (c) => {
    const [r, g, b] = (c.match(/[\\d.]+/g) ?? []).slice(0, 3).map(Number).map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (e) => {
    for (; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (!/rgba\\(.*, 0\\)$/.test(c) && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  let min = 21;
  for (const e of document.querySelectorAll('label, button, select, textarea, .meta span, h1, a, .output')) {
    const [a, b] = [lum(getComputedStyle(e).color), lum(bg(e))];
    min = Math.min(min, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
  }
  return min;
})()`;

before(async () => {
  await useTestBackend();
  modelDir = await randomCheckpoint(tinyConfig('token', 'target'), 11);
  // The demo model's language profile, so that "Detect language" works (among en, de, fr here).
  fs.copyFileSync(path.join(DEFAULT_MODEL_DIR, 'langid.json'), path.join(modelDir, 'langid.json'));
  browser = await launchChromium();
});
after(() => browser.close());

describe('the playground', () => {
  let server: TaskmoeServer;
  let url: string;
  before(async () => {
    ({ server, url } = await listening({}));
  });
  after(() => server.shutdown());

  test('fills its pickers from /languages, labels every control and keeps text contrast readable', async () => {
    const page = await open(url);
    const sources = await page.$$eval('#source option', (os) => os.map((o) => (o as HTMLOptionElement).value));
    const languages = (await (await fetch(`${url}/languages`)).json()) as { code: string; targets: string[] }[];
    assert.deepEqual(sources, ['auto', ...languages.map((l) => l.code)]);
    const unlabelled = await page.$$eval('input, select, textarea', (els) =>
      els.filter((e) => (e as HTMLInputElement).labels?.length === 0).map((e) => e.id),
    );
    assert.deepEqual(unlabelled, []);
    // WCAG contrast of the text of every label, button, field and message (AA: 4.5).
    const worst = (await page.evaluate(LOWEST_CONTRAST)) as number;
    assert.ok(worst >= 4.5, `lowest contrast ${worst.toFixed(2)}`);
    await page.screenshot({ path: path.join(shots, '1-loaded.png') });
    await page.close();
  });

  test('type a sentence, pick a target, see its translation, the time taken and alternatives', async () => {
    const page = await open(url);
    await page.selectOption('#source', 'en');
    await page.selectOption('#target', 'de');
    await page.fill('#q', 'Save the file before you quit');
    const { charLimit } = await (await fetch(`${url}/frontend/settings`)).json();
    assert.equal(await page.textContent('#counter'), `29 / ${charLimit} characters`);
    await page.selectOption('#alternatives-count', '2');
    await page.click('#translate');
    await page.waitForFunction(() => document.getElementById('timing')?.textContent?.startsWith('Translated in'));
    const expected = await apiTranslate(url, {
      q: 'Save the file before you quit',
      source: 'en',
      target: 'de',
      alternatives: 2,
    });
    assert.equal(await page.textContent('#output'), expected.translatedText);
    assert.deepEqual(
      await page.$$eval('#alternatives li', (lis) => lis.map((l) => l.textContent)),
      expected.alternatives,
    );
    assert.equal(await page.isEnabled('#copy'), true);
    await page.screenshot({ path: path.join(shots, '2-translated.png') });
    await page.close();
  });

  test('detects the language, shows it, and swap makes it the target', async () => {
    const page = await open(url);
    assert.equal(await page.inputValue('#source'), 'auto');
    await page.selectOption('#target', 'en');
    await page.fill('#q', 'Datei speichern');
    await page.click('#translate');
    await page.waitForFunction(() => document.getElementById('detected')?.textContent?.startsWith('Detected:'));
    const expected = await apiTranslate(url, { q: 'Datei speichern', source: 'auto', target: 'en' });
    const detected = expected.detectedLanguage!.language as string;
    assert.match(
      (await page.textContent('#detected')) ?? '',
      new RegExp(`Detected: \\w+ \\(${Math.round(expected.detectedLanguage!.confidence)}%\\)`),
    );
    assert.equal(await page.textContent('#output'), expected.translatedText);
    await page.screenshot({ path: path.join(shots, '3-detected.png') });
    await page.click('#swap');
    assert.equal(await page.inputValue('#source'), 'en');
    assert.equal(await page.inputValue('#target'), detected);
    assert.equal(await page.inputValue('#q'), expected.translatedText, 'the translation becomes the text');
    assert.equal(await page.textContent('#output'), '');
    await page.screenshot({ path: path.join(shots, '4-swapped.png') });
    await page.close();
  });

  test('uploads a .po file through /translate_file and offers the translated catalog', async () => {
    const page = await open(url);
    await page.selectOption('#source', 'en');
    await page.selectOption('#target', 'fr');
    const po =
      'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n#: src/main.c:10\nmsgid "Save the file"\nmsgstr ""\n\nmsgid "Quit"\nmsgstr ""\n';
    await page.setInputFiles('#file', {
      name: 'app.po',
      mimeType: 'text/x-gettext-translation',
      buffer: Buffer.from(po),
    });
    await page.click('#translate-file');
    const link = await page.waitForSelector('#file-result a');
    assert.match((await link.textContent()) ?? '', /Download the translated app\.po/);
    const translated = await (await fetch((await link.getAttribute('href')) as string)).text();
    assert.match(translated, /#: src\/main\.c:10\nmsgid "Save the file"\nmsgstr "[^"]+"/, translated);
    assert.match(translated, /msgid "Quit"\nmsgstr "[^"]+"/);
    await page.screenshot({ path: path.join(shots, '5-file.png') });
    await page.close();
  });

  test('works from the keyboard alone', async () => {
    const page = await open(url);
    const order: string[] = [];
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      order.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName || ''));
    }
    // The page's controls in reading order after its two links (copy is disabled until there is a translation).
    assert.deepEqual(
      order.filter((id) => id !== 'A').slice(0, 6),
      ['source', 'swap', 'target', 'q', 'output', 'alternatives-count'],
      `focus order ${order.join(' ')}`,
    );
    await page.focus('#source');
    await page.keyboard.press('Tab'); // swap
    await page.keyboard.press('Tab'); // target
    const before = await page.inputValue('#target');
    await page.keyboard.press('ArrowDown');
    const picked = await page.inputValue('#target');
    assert.notEqual(picked, before, 'arrow keys change the target');
    await page.keyboard.press('Tab'); // text
    await page.keyboard.type('Print the document');
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction(() => document.getElementById('timing')?.textContent?.startsWith('Translated in'));
    const expected = await apiTranslate(url, { q: 'Print the document', source: 'auto', target: picked });
    assert.equal(await page.textContent('#output'), expected.translatedText);
    await page.screenshot({ path: path.join(shots, '6-keyboard.png') });
    await page.close();
  });

  test('shows hostile text as text: a script in the input or the answer never runs', async () => {
    const page = await open(url);
    const hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await page.route('**/translate', (route) =>
      route.fulfill({
        contentType: 'application/json',
        body: JSON.stringify({
          translatedText: hostile,
          alternatives: [hostile],
          detectedLanguage: { language: '<b>x</b>', confidence: 50 },
        }),
      }),
    );
    await page.fill('#q', hostile);
    await page.selectOption('#alternatives-count', '1');
    await page.click('#translate');
    await page.waitForFunction(() => document.getElementById('timing')?.textContent?.startsWith('Translated in'));
    assert.equal(await page.textContent('#output'), hostile);
    assert.equal(await page.textContent('#alternatives li'), hostile);
    assert.match((await page.textContent('#detected')) ?? '', /<b>x<\/b>/);
    assert.equal(await page.$$eval('#output *, #alternatives li *, #detected *', (els) => els.length), 0);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    await page.screenshot({ path: path.join(shots, '7-hostile.png') });
    await page.close();
  });

  test('tells the user when a file is too large (413)', async () => {
    const page = await open(url);
    // Over both the file limit and the body limit (1 MiB by default).
    await page.setInputFiles('#file', {
      name: 'big.txt',
      mimeType: 'text/plain',
      buffer: Buffer.alloc(1024 * 1024 + 1, 'a'),
    });
    await page.click('#translate-file');
    await page.waitForFunction(() => document.getElementById('message')?.textContent?.startsWith('Too large'));
    await page.screenshot({ path: path.join(shots, '8-too-large.png') });
    await page.close();
  });
});

describe('the playground with --api-keys', () => {
  let server: TaskmoeServer;
  let url: string;
  let dataDir: string;
  before(async () => {
    dataDir = tempDir();
    ({ server, url } = await listening({ apiKeys: true, dataDir }));
  });
  after(() => server.shutdown());

  test('asks for a key, explains a refusal, and translates with a valid key', async () => {
    const store = KeyStore.open(keyDbPath(dataDir));
    const key = store.add({ name: 'playground' }).key;
    store.close();
    const page = await open(url);
    assert.equal(await page.isVisible('#api-key'), true);
    await page.selectOption('#source', 'en');
    await page.fill('#q', 'Quit');
    await page.click('#translate');
    await page.waitForFunction(() => document.getElementById('message')?.textContent?.startsWith('Not allowed'));
    await page.fill('#api-key', key);
    await page.click('#translate');
    await page.waitForFunction(() => document.getElementById('timing')?.textContent?.startsWith('Translated in'));
    assert.equal(await page.textContent('#message'), '');
    await page.close();
  });
});

describe('the playground switched off', () => {
  test('--disable-web-ui: / is 404, the API and its docs still answer', async () => {
    const server = await createServer({
      ...resolveSettings({}, {}),
      modelDir,
      workers: 1,
      warm: 'none',
      disableWebUi: true,
    });
    try {
      assert.equal((await server.app.inject('/')).statusCode, 404);
      assert.equal((await server.app.inject('/static/playground.js')).statusCode, 404);
      assert.equal((await server.app.inject('/openapi.json')).statusCode, 200);
    } finally {
      await server.shutdown();
    }
  });
});
