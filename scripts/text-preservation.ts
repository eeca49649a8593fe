// Preservation of spans that must not change (URLs, e-mails, paths, placeholders, entities), on
// every dev message that holds one, with a model (the demo model by default): the model alone on
// the raw text, against what the server answers, and how many masks and placeholders the model
// itself carried through (before the pipeline puts dropped ones back).
//
// The "pipeline" answers go through the server's own TextService (mask, segment, translate,
// repair, restore), in this process: its batcher is replaced by a Translator per direction on the
// serving engine (ONNX Runtime without a GPU), every message of a direction in one call, decoded
// in length-sorted batches of --batch sentences.
//
//   node --import tsx scripts/text-preservation.ts [--model DIR] [--limit N] [--data DIR,...]
//        [--batch 64] [--failures FILE.jsonl] [--inject N]
//
// --inject N adds a set the dev data lacks: N plain dev sentences per direction, each with one span
// of each kind (URL, e-mail, path, printf, Python, brace, template, entity) between its middle words.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.ts';
import type { Direction } from '../src/models/transformer.ts';
import { TextService } from '../src/server/text-service.ts';
import { type Span, mask, placeholdersIn, preserved } from '../src/text/mask.ts';
import { needsModel, prepare } from '../src/text/pipeline.ts';
import { sentencesOf } from '../src/text/segment.ts';
import { DEFAULT_MODEL_DIR, Translator } from '../src/translator/index.ts';
import { ServedModel } from '../src/translator/served-model.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    limit: { type: 'string', default: '0' },
    batch: { type: 'string', default: '64' },
    failures: { type: 'string' },
    inject: { type: 'string', default: '0' },
    data: { type: 'string', default: '/work/shared/data/gettext-mt/dev,/work/shared/data/libreoffice-mt/dev' },
  },
});
const limit = Number(values.limit);
const batchSize = Number(values.batch);
const inject = Number(values.inject);

let engineLog = '';
await initBackend({ log: (m: string) => (engineLog += m) });
process.stderr.write(`${engineLog}\n`);
const served = await ServedModel.open(values.model!);
const translators = new Map<string, Translator>();
async function translatorOf(dir: Direction): Promise<Translator> {
  const key = `${dir.source}-${dir.target}`;
  let t = translators.get(key);
  if (t === undefined) translators.set(key, (t = await Translator.load(values.model!, dir, () => {})));
  return t;
}
/** What the model answered for each sentence the service sent, in order (reset per direction). */
let modelOut: string[] = [];
const service = new TextService(served, undefined, async (dir, ids, options) => {
  const out = (await translatorOf(dir)).translateIds(ids, dir, { ...options, batchSize });
  modelOut.push(...out.map((o) => o.text));
  return out;
});
const ctx = { timeoutMs: 1e9, signal: new AbortController().signal, client: 'preservation' };
const failures = values.failures ? fs.createWriteStream(values.failures) : undefined;

interface Tally {
  messages: number;
  whole: number;
  spans: number;
  kept: number;
}
type Mode = { byKind: Map<string, Tally>; all: Tally };
const tally = (): Tally => ({ messages: 0, whole: 0, spans: 0, kept: 0 });
const newMode = (): Mode => ({ byKind: new Map(), all: tally() });
const rows: Array<{ data: string; mode: string } & Mode> = [];
const started = Date.now();

/** A direction's dev messages (one side of en-xx.tsv) that hold a span. */
function devTexts(dir: string, source: string, target: string): string[] {
  const file = path.join(dir, `en-${source === 'en' ? target : source}.tsv`);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[source === 'en' ? 0 : 1])
    .filter((t) => t && (mask(t).spans.length > 0 || mask(t).placeholders.length > 0));
}

/**
 * Kinds the dev sets lack (URLs, entities, braces, ...): plain dev sentences of the direction's
 * source side, each with one span of each kind put between its middle words.
 */
const INJECTED: Record<string, string[]> = {
  url: [
    'https://example.com/docs/install.html',
    'http://www.gnu.org/licenses/',
    'https://en.wikipedia.org/wiki/Foo_(bar)',
  ],
  email: ['bug-tar@gnu.org', 'first.last@example.co.uk'],
  path: ['/etc/fstab', '~/.config/app.conf', 'C:\\Program Files\\App\\app.exe'],
  printf: ['%s', '%1$d', '%lu'],
  python: ['%(name)s', '%(count)d'],
  brace: ['{0}', '{name}'],
  template: ['{{user}}', '${HOME}', '$(ARG)'],
  entity: ['&amp;', '&#169;'],
};
function injectedTexts(dir: string, source: string, target: string, n: number): string[] {
  const file = path.join(dir, `en-${source === 'en' ? target : source}.tsv`);
  const plain = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.split('\t')[source === 'en' ? 0 : 1])
    .filter((t) => t && /^\p{Lu}[^%{}<>&/@$]*\p{Ll}$/u.test(t) && t.split(' ').length >= 4)
    .slice(0, n);
  return Object.values(INJECTED).flatMap((samples) =>
    plain.map((t, i) => {
      const words = t.split(' ');
      const mid = Math.floor(words.length / 2);
      return [...words.slice(0, mid), samples[i % samples.length], ...words.slice(mid)].join(' ') + '.';
    }),
  );
}

/** Translates a direction's texts raw and through the service, and counts what each kept. */
async function measure(
  data: string,
  modes: Record<'raw' | 'model kept in place' | 'pipeline', Mode>,
  pair: string,
  texts: string[],
) {
  const [source, target] = pair.split('-');
  const t0 = Date.now();
  const direction = { source, target };
  const translator = await translatorOf(direction);
  const tooLong = service.tooLongFor(direction);
  // The raw baseline: the unmasked text straight to the model, cut to fit.
  const rawOut = translator
    .translate(
      texts.map((x) => (tooLong(x) ? x.slice(0, 200) : x)),
      direction,
      { batchSize },
    )
    .map((x) => x.text);
  modelOut = [];
  const { translated } = await service.translate(
    { texts, source, target, format: 'text', alternatives: 0, options: {} },
    ctx,
  );
  // The sentences the service sent, in its order, with the kind of each mask and placeholder.
  const sent = texts.flatMap((text) => {
    const p = prepare(text, tooLong);
    return sentencesOf(p.pieces)
      .filter(needsModel)
      .map((s) => [
        ...[...s.matchAll(/\{(\d+)\}/g)].map((m) => ({ kind: p.spans[Number(m[1])].kind, text: m[0] })),
        ...placeholdersIn(s).map((text) => ({ kind: 'printf' as const, text })),
      ]);
  });
  if (sent.length !== modelOut.length)
    throw new Error(`${pair}: ${modelOut.length} answers for ${sent.length} sentences`);
  sent.forEach((spans, i) => count(modes['model kept in place'], spans, modelOut[i]));
  texts.forEach((text, i) => {
    const m = mask(text);
    const spans = [...m.spans, ...m.placeholders];
    count(modes.raw, spans, rawOut[i]);
    const r = count(modes.pipeline, spans, translated[i]);
    if (r.kept < r.total) failures?.write(`${JSON.stringify({ pair, text, translated: translated[i] })}\n`);
  });
  const s = ((Date.now() - t0) / 1000).toFixed(0);
  process.stderr.write(
    `${data} ${pair}: ${texts.length} messages, ${s} s (total ${((Date.now() - started) / 1000).toFixed(0)} s)\n`,
  );
}

const dirs = values.data!.split(',');
const sets: Array<[string, (source: string, target: string) => string[]]> = dirs.map((dir) => [
  path.basename(path.dirname(dir)),
  (source, target) => devTexts(dir, source, target),
]);
if (inject > 0)
  sets.push([`injected (${path.basename(path.dirname(dirs[0]))})`, (s, t) => injectedTexts(dirs[0], s, t, inject)]);
for (const [data, textsOf] of sets) {
  const modes = { raw: newMode(), 'model kept in place': newMode(), pipeline: newMode() };
  for (const pair of served.pairs) {
    let texts = textsOf(...(pair.split('-') as [string, string]));
    if (limit > 0) texts = texts.slice(0, limit);
    if (texts.length > 0) await measure(data, modes, pair, texts);
  }
  for (const [mode, m] of Object.entries(modes)) rows.push({ data, mode, ...m });
}

function count(m: Mode, spans: Span[], out: string): { kept: number; total: number } {
  const r = preserved(spans, out);
  add(m.all, r.kept, r.total);
  for (const kind of new Set(spans.map((s) => s.kind))) {
    const k = preserved(
      spans.filter((s) => s.kind === kind),
      out,
    );
    if (!m.byKind.has(kind)) m.byKind.set(kind, tally());
    add(m.byKind.get(kind)!, k.kept, k.total);
  }
  return r;
}
function add(t: Tally, kept: number, total: number): void {
  t.messages++;
  t.spans += total;
  t.kept += kept;
  if (kept === total) t.whole++;
}
const pct = (a: number, b: number) => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`);

console.log('| data | mode | kind | messages | messages with every span kept | spans kept |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  for (const [kind, t] of [['all', r.all] as const, ...[...r.byKind].sort()])
    console.log(
      `| ${r.data} | ${r.mode} | ${kind} | ${t.messages} | ${pct(t.whole, t.messages)} | ${pct(t.kept, t.spans)} (${t.kept}/${t.spans}) |`,
    );
}
failures?.end();
for (const t of translators.values()) t.dispose();
