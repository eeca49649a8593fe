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
//        [--batch 64] [--failures FILE.jsonl]
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
    data: { type: 'string', default: '/work/shared/data/gettext-mt/dev,/work/shared/data/libreoffice-mt/dev' },
  },
});
const limit = Number(values.limit);
const batchSize = Number(values.batch);

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

for (const dir of values.data!.split(',')) {
  const data = path.basename(path.dirname(dir));
  const modes = { raw: newMode(), 'model kept in place': newMode(), pipeline: newMode() };
  for (const pair of served.pairs) {
    const [source, target] = pair.split('-');
    const other = source === 'en' ? target : source;
    const file = path.join(dir, `en-${other}.tsv`);
    if (!fs.existsSync(file)) continue;
    const side = source === 'en' ? 0 : 1;
    let texts = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[side])
      .filter((t) => t && (mask(t).spans.length > 0 || mask(t).placeholders.length > 0));
    if (limit > 0) texts = texts.slice(0, limit);
    if (texts.length === 0) continue;
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
    if (sent.length !== modelOut.length) throw new Error(`${pair}: ${modelOut.length} answers for ${sent.length} sentences`);
    sent.forEach((spans, i) => count(modes['model kept in place'], spans, modelOut[i]));
    texts.forEach((text, i) => {
      const m = mask(text);
      const spans = [...m.spans, ...m.placeholders];
      count(modes.raw, spans, rawOut[i]);
      const r = count(modes.pipeline, spans, translated[i]);
      if (r.kept < r.total) failures?.write(`${JSON.stringify({ pair, text, translated: translated[i] })}\n`);
    });
    const s = ((Date.now() - t0) / 1000).toFixed(0);
    process.stderr.write(`${data} ${pair}: ${texts.length} messages, ${s} s (total ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
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
