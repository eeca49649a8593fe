// What long and formatted text costs, side by side in one run on the demo model behind a real
// listening server:
//   - a 5,000-character text (dev messages as sentences) against the same sentences sent as an
//     array q (the ceiling: the text costs what its sentences cost; target at most +10%);
//   - the same text as html (a <p> per few sentences, inline <b>/<a>) and the share of its time
//     spent parsing and reassembling html (the pipeline with an instant translator);
//   - language detection per 100-character text.
// Medians over --runs alternating runs.
//
//   node --import tsx scripts/libretranslate-bench.ts [--runs 5] [--workers 1] [--pair en-de]
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { createServer } from '../src/server/app.ts';
import { resolveSettings } from '../src/server/settings.ts';
import { detect, loadProfile } from '../src/text/detect.ts';
import { translateHtml } from '../src/text/html.ts';
import { translateTexts } from '../src/text/pipeline.ts';
import { segment, sentencesOf } from '../src/text/segment.ts';
import { DEFAULT_MODEL_DIR } from '../src/translator/index.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    workers: { type: 'string', default: '1' },
    pair: { type: 'string', default: 'en-de' },
  },
});
const runs = Number(values.runs);
const [source, target] = values.pair!.split('-');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// The text: dev messages that are plain sentences, joined until 5,000 characters.
const dev = fs
  .readFileSync(`/work/shared/data/gettext-mt/dev/en-${source === 'en' ? target : source}.tsv`, 'utf8')
  .split('\n')
  .map((l) => l.split('\t')[source === 'en' ? 0 : 1])
  .filter((t) => t && /^\p{Lu}[^%{}<>&]*\p{Ll}$/u.test(t));
let text = '';
for (let i = 0; text.length + dev[i].length + 2 <= 5000; i++) text += `${i > 0 ? ' ' : ''}${dev[i]}.`;
const sentences = sentencesOf(segment(text));
let html = '';
for (let i = 0; i < sentences.length; i += 3) {
  const [a, b, c] = sentences.slice(i, i + 3);
  const words = a.split(' ');
  html += `<p>${words[0]} <b>${words.slice(1, 3).join(' ')}</b> ${words.slice(3).join(' ')}${b ? ` <a href="https://example.com/${i}">${b}</a>` : ''}${c ? ` ${c}` : ''}</p>\n`;
}

const server = await createServer({
  ...resolveSettings({}, {}),
  modelDir: DEFAULT_MODEL_DIR,
  workers: Number(values.workers),
  warm: values.pair!,
  timeoutMs: 600_000,
  maxTexts: 1024,
  maxTextChars: 20_000,
});
await server.ready;
await server.app.listen({ port: 0, host: '127.0.0.1' });
const url = `http://127.0.0.1:${(server.app.server.address() as { port: number }).port}`;
const post = async (body: object) => {
  const t0 = performance.now();
  const r = await fetch(`${url}/translate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ source, target, ...body }),
  });
  if (r.status !== 200) throw new Error(`${r.status} ${await r.text()}`);
  await r.json();
  return performance.now() - t0;
};

await post({ q: sentences.slice(0, 8) }); // warm-up
const times = { text: [] as number[], array: [] as number[], html: [] as number[] };
for (let r = 0; r < runs; r++) {
  times.array.push(await post({ q: sentences }));
  times.text.push(await post({ q: text }));
  times.html.push(await post({ q: html, format: 'html' }));
}
await server.shutdown();

// Html parsing and reassembly alone: the html pipeline with an instant translator.
const instant = async (ss: string[]) => ss;
const parse: number[] = [];
const plain: number[] = [];
for (let r = 0; r < 20; r++) {
  let t0 = performance.now();
  await translateHtml([html], instant);
  parse.push(performance.now() - t0);
  t0 = performance.now();
  await translateTexts([text], instant);
  plain.push(performance.now() - t0);
}

// Detection per 100-character text.
const profile = loadProfile(DEFAULT_MODEL_DIR)!;
const pieces = Array.from({ length: Math.floor(text.length / 100) }, (_, i) => text.slice(i * 100, i * 100 + 100));
for (const p of pieces) detect(profile, p);
const detectRuns: number[] = [];
for (let r = 0; r < 9; r++) {
  const t0 = performance.now();
  for (let k = 0; k < 10; k++) for (const p of pieces) detect(profile, p);
  detectRuns.push(((performance.now() - t0) / (10 * pieces.length)) * 1000);
}

const m = { text: median(times.text), array: median(times.array), html: median(times.html) };
console.log(
  `text: ${text.length} characters, ${sentences.length} sentences (${values.pair}, ${values.workers} worker(s), ${runs} runs, medians)`,
);
console.log(`| request | median ms | vs array |`);
console.log(`|---|---|---|`);
console.log(`| array q of the ${sentences.length} sentences | ${m.array.toFixed(0)} | 1.00 |`);
console.log(`| one 5,000-character text | ${m.text.toFixed(0)} | ${(m.text / m.array).toFixed(3)} |`);
console.log(
  `| the same as html (${html.length} characters) | ${m.html.toFixed(0)} | ${(m.html / m.array).toFixed(3)} |`,
);
console.log(
  `html parse + reassembly (instant translator): median ${median(parse).toFixed(2)} ms = ${((100 * median(parse)) / m.html).toFixed(2)}% of the html request; text segmentation + masks: ${median(plain).toFixed(2)} ms = ${((100 * median(plain)) / m.text).toFixed(2)}% of the text request`,
);
console.log(
  `detection: median ${median(detectRuns).toFixed(1)} µs per 100-character text (${pieces.length} texts x 10, 9 runs)`,
);
