// Benchmark (not a test) of the playground's first load in headless Chromium against a real server
// on the demo model: bytes transferred (bodies and headers, cold cache) and time to interactive
// (navigation start to the pickers filled from /languages, when the page marks itself ready);
// then one translation, saved as docs/playground.png for the README.
// Usage: node --import tsx scripts/playground-bench.ts [--model DIR] [--loads N] [--screenshot FILE]
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from '../src/server/app.ts';
import { resolveSettings } from '../src/server/settings.ts';
import { median } from '../src/bench/stats.ts';
import { DEFAULT_MODEL_DIR } from '../src/translator/index.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { tempDir } from '../test/helpers/engine.ts';

const { values } = parseArgs({
  options: { model: { type: 'string' }, loads: { type: 'string' }, screenshot: { type: 'string' } },
});
const model = path.resolve(values.model ?? DEFAULT_MODEL_DIR);
const loads = Number(values.loads ?? 7);
const server = await createServer({
  ...resolveSettings({}, {}),
  modelDir: model,
  workers: 1,
  warm: 'en-de',
  dataDir: tempDir(),
});
await server.ready;
const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
const browser = await launchChromium();
const bytes: number[] = [];
const requests: number[] = [];
const tti: number[] = [];
try {
  for (let i = 0; i < loads; i++) {
    // A fresh context: an empty cache, as a first visit.
    const context = await browser.newContext();
    const page = await context.newPage();
    let total = 0;
    let count = 0;
    page.on('requestfinished', async (req) => {
      const sizes = await req.sizes();
      total += sizes.responseBodySize + sizes.responseHeadersSize;
      count++;
    });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]');
    const ms = Number(await page.getAttribute('body', 'data-ready-ms'));
    await page.waitForLoadState('networkidle');
    bytes.push(total);
    requests.push(count);
    tti.push(ms);
    await context.close();
  }
  console.log(
    `playground first load (${loads} cold loads, headless Chromium, ${url}): ${median(bytes)} bytes in ${median(requests)} requests; time to interactive median ${median(tti).toFixed(0)} ms (min ${Math.min(...tti).toFixed(0)}, max ${Math.max(...tti).toFixed(0)})`,
  );

  const page = await browser.newPage({ viewport: { width: 1100, height: 640 } });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  await page.selectOption('#source', 'en');
  await page.selectOption('#target', 'de');
  await page.selectOption('#alternatives-count', '2');
  await page.fill('#q', 'The file could not be saved. Do you want to try again?');
  await page.click('#translate');
  await page.waitForFunction(() => document.getElementById('timing')?.textContent?.startsWith('Translated in'));
  console.log(`translation shown: ${await page.textContent('#output')} (${await page.textContent('#timing')})`);
  if (values.screenshot !== undefined) {
    await page.screenshot({ path: values.screenshot });
    console.log(`wrote ${values.screenshot}`);
  }
} finally {
  await browser.close();
  await server.shutdown();
}
