// Lines of any length through a local Translator, as `taskmoe translate` reads them: each line cut
// into sentences the model takes (never refused), spans kept; alternatives rebuilt from each
// sentence's n-best list.
import type { Direction } from '../models/transformer.ts';
import type { TranslateOptions, Translator } from '../translator/index.ts';
import { prepare, translatePrepared } from './pipeline.ts';

export async function translateLines(
  translator: Translator,
  lines: string[],
  dir: Direction,
  opts: TranslateOptions,
): Promise<Array<{ text: string; alternatives: string[] }>> {
  translator.checkDirection(dir);
  const { tokenizer, model } = translator;
  const tooLong = (s: string) => tokenizer.encodeSource(s, dir.target).length > model.config.maxLength;
  const prepared = lines.map((l) => prepare(l, tooLong));
  let results: ReturnType<Translator['translate']> = [];
  const best = await translatePrepared(prepared, async (sentences) => {
    results = translator.translate(sentences, dir, opts);
    return results.map((r) => r.text);
  });
  const alternatives: string[][] = [];
  for (let k = 0; k < (opts.nBest ?? 1) - 1; k++) {
    alternatives.push(await translatePrepared(prepared, async () => results.map((r) => r.alternatives[k] ?? r.text)));
  }
  return best.map((text, i) => ({ text, alternatives: alternatives.map((a) => a[i]) }));
}
