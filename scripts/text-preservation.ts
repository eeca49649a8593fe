// Preservation of spans that must not change (URLs, e-mails, paths, placeholders, entities), on
// every dev message that holds one, with a model (the demo model by default): the model alone on
// the raw text, against taskmoe's mask-and-restore pipeline (and how many masks the model itself
// carried through, before the pipeline puts dropped ones back).
//
//   node --import tsx scripts/text-preservation.ts [--model DIR] [--limit N] [--data DIR,...]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.ts';
import { type Span, mask, maskIds, placeholdersIn, preserved } from '../src/text/mask.ts';
import { translateTexts } from '../src/text/pipeline.ts';
import { DEFAULT_MODEL_DIR, Translator } from '../src/translator/index.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    limit: { type: 'string', default: '0' },
    data: { type: 'string', default: '/work/shared/data/gettext-mt/dev,/work/shared/data/libreoffice-mt/dev' },
  },
});
const limit = Number(values.limit);

await initBackend({ log: () => {} });
const translators = new Map<string, Translator>();
const config = JSON.parse(fs.readFileSync(path.join(values.model!, 'config.json'), 'utf8')) as {
  languages: string[];
  pairs: string[];
  maxLength: number;
};

interface Tally {
  messages: number;
  whole: number;
  spans: number;
  kept: number;
}
const tally = () => ({ messages: 0, whole: 0, spans: 0, kept: 0 });
const rows: Array<{ data: string; mode: string; byKind: Map<string, Tally>; all: Tally }> = [];

for (const dir of values.data!.split(',')) {
  const data = path.basename(path.dirname(dir));
  const modes = {
    raw: { byKind: new Map<string, Tally>(), all: tally() },
    'model kept in place': { byKind: new Map<string, Tally>(), all: tally() },
    pipeline: { byKind: new Map<string, Tally>(), all: tally() },
  };
  for (const pair of config.pairs) {
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
    const key = `${source}-${target}`;
    let translator = translators.get(key);
    if (translator === undefined)
      translators.set(key, (translator = await Translator.load(values.model!, { source, target })));
    const t = translator;
    const dirn = { source, target };
    const tooLong = (s: string) => t.tokenizer.encodeSource(s, target).length > config.maxLength;
    // The raw baseline: sentences of the unmasked text straight to the model (no masks).
    const rawOut = t
      .translate(
        texts.map((x) => (tooLong(x) ? x.slice(0, 200) : x)),
        dirn,
      )
      .map((x) => x.text);
    let modelOut: string[] = [];
    const piped = await translateTexts(
      texts,
      async (ss) => {
        const out = t.translate(ss, dirn).map((x) => x.text);
        modelOut = modelOut.concat(
          out.map((o, i) => {
            const wanted = [...maskIds(ss[i]).map((id) => `{${id}}`), ...placeholdersIn(ss[i])];
            const kept = preserved(
              wanted.map((text) => ({ kind: 'atomic' as const, text })),
              o,
            ).kept;
            return `${kept}/${wanted.length}`;
          }),
        );
        return out;
      },
      tooLong,
    );
    texts.forEach((text, i) => {
      const m = mask(text);
      const spans = [...m.spans, ...m.placeholders];
      count(modes.raw, spans, rawOut[i]);
      count(modes.pipeline, spans, piped[i]);
    });
    for (const m of modelOut) {
      const [kept, total] = m.split('/').map(Number);
      const a = modes['model kept in place'].all;
      a.messages++;
      a.spans += total;
      a.kept += kept;
      if (kept === total) a.whole++;
    }
    process.stderr.write(`${data} ${pair}: ${texts.length} messages\n`);
  }
  for (const [mode, m] of Object.entries(modes)) rows.push({ data, mode, ...m });
}

function count(m: { byKind: Map<string, Tally>; all: Tally }, spans: Span[], out: string): void {
  const r = preserved(spans, out);
  add(m.all, r.kept, r.total);
  for (const kind of new Set(spans.map((s) => s.kind))) {
    const mine = spans.filter((s) => s.kind === kind);
    const k = preserved(mine, out);
    if (!m.byKind.has(kind)) m.byKind.set(kind, tally());
    add(m.byKind.get(kind)!, k.kept, k.total);
  }
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
  console.log(
    `| ${r.data} | ${r.mode} | all | ${r.all.messages} | ${pct(r.all.whole, r.all.messages)} | ${pct(r.all.kept, r.all.spans)} (${r.all.kept}/${r.all.spans}) |`,
  );
  for (const [kind, t] of [...r.byKind].sort())
    console.log(
      `| ${r.data} | ${r.mode} | ${kind} | ${t.messages} | ${pct(t.whole, t.messages)} | ${pct(t.kept, t.spans)} |`,
    );
}
for (const t of translators.values()) t.dispose();
