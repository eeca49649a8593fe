// Whole texts, html, catalogs and detection over the sentence batcher: what LibreTranslate's routes
// ask of a model. Directions the model lacks go through English (two decodes, each batched like
// any other sentence). It knows the served model's languages, pairs and each direction's tokenizer,
// and no HTTP.
import type { Direction } from '../models/transformer.ts';
import { type Detection, type LangIdProfile, detect } from '../text/detect.ts';
import { translateHtml } from '../text/html.ts';
import { type TranslateSentences, translateTexts } from '../text/pipeline.ts';
import { CatalogError, translateCatalog } from '../text/po.ts';
import { InputError, type TranslateOptions, type Translation } from '../translator/index.ts';
import type { ServedModel } from '../translator/served-model.ts';

/** Sends tokenized sentences of one direction through the batcher; resolves in order. */
export type SubmitSentences = (
  direction: Direction,
  ids: number[][],
  options: TranslateOptions,
  ctx: { deadline: number; signal: AbortSignal; client: string },
) => Promise<Translation[]>;

export interface RequestContext {
  /** The request's time in the queue and engine; the clock starts when its first sentences are queued (preparing text is not queue time). */
  timeoutMs: number;
  /** Milliseconds since the epoch, set on the first submit. */
  deadline?: number;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** Who asks (the client's address): its share of an engine worker is bounded. */
  client: string;
}

export type TextFormat = 'text' | 'html';

export interface TextJob {
  texts: string[];
  source: string;
  target: string;
  format: TextFormat;
  alternatives: number;
  options: TranslateOptions;
  /** How errors name each text (default q[i]). */
  names?: string[];
}

export interface TextResult {
  translated: string[];
  /** Per text, its alternatives (empty when none were asked). */
  alternatives: string[][];
  /** Per text, when the source was "auto". */
  detected?: Detection[];
}

const PIVOT = 'en';

export class TextService {
  readonly pairs: Set<string>;

  constructor(
    private readonly model: ServedModel,
    private readonly profile: LangIdProfile | undefined,
    private readonly submit: SubmitSentences,
  ) {
    this.pairs = new Set(model.pairs);
  }

  get languages(): string[] {
    return this.model.languages;
  }

  /** The route of a direction: one hop when the model serves it, two through English, else undefined. */
  route(source: string, target: string): Direction[] | undefined {
    if (this.pairs.has(`${source}-${target}`)) return [{ source, target }];
    if (
      source !== PIVOT &&
      target !== PIVOT &&
      this.pairs.has(`${source}-${PIVOT}`) &&
      this.pairs.has(`${PIVOT}-${target}`)
    ) {
      return [
        { source, target: PIVOT },
        { source: PIVOT, target },
      ];
    }
    return undefined;
  }

  /** Every target reachable from `source`, directly or through English. */
  targetsOf(source: string): string[] {
    return this.languages.filter((t) => t !== source && this.route(source, t) !== undefined);
  }

  /** The pairs served only through English. */
  pivotPairs(): string[] {
    return this.languages.flatMap((s) =>
      this.languages
        .filter((t) => t !== s && !this.pairs.has(`${s}-${t}`) && this.route(s, t) !== undefined)
        .map((t) => `${s}-${t}`),
    );
  }

  /** Detected languages of a text, best first; throws when the model ships no langid.json. */
  detect(text: string): Detection[] {
    if (this.profile === undefined)
      throw new InputError('this model has no language identification profile (langid.json); give "source" explicitly');
    return detect(this.profile, text, this.languages);
  }

  /** Throws an InputError naming the field when a language or direction cannot be served. */
  checkLanguages(source: string, target: string): void {
    if (source !== 'auto' && !this.languages.includes(source))
      throw new InputError(`unknown source language "${source}"; supported: auto, ${this.languages.join(', ')}`);
    if (!this.languages.includes(target))
      throw new InputError(`unknown target language "${target}"; supported: ${this.languages.join(', ')}`);
    if (source !== 'auto' && source !== target && this.route(source, target) === undefined)
      throw new InputError(`unsupported pair ${source}-${target}`);
  }

  /** Source ids of a sentence, by the tokenizer of the model serving `direction`. */
  private encode(sentence: string, direction: Direction): number[] {
    return this.model.tokenizerFor(direction).encodeSource(sentence, direction.target, direction.source);
  }

  /** Whether a sentence needs cutting before the model serving `direction` takes it (its maxLength tokens with prompt and end). */
  tooLongFor(direction: Direction): (sentence: string) => boolean {
    const { maxLength } = this.model.configFor(direction);
    return (sentence) => this.encode(sentence, direction).length > maxLength;
  }

  /** The first hop of a direction's route: the model that takes the source text. */
  private firstHop(source: string, target: string): Direction {
    const route = this.route(source, target);
    if (route === undefined) throw new InputError(`unsupported pair ${source}-${target}`);
    return route[0];
  }

  /** Translates texts (plain or html) of one request, each with its own detected source when "auto". */
  async translate(job: TextJob, ctx: RequestContext): Promise<TextResult> {
    this.checkLanguages(job.source, job.target);
    const detected =
      job.source === 'auto'
        ? job.texts.map((t) => this.detect(job.format === 'html' ? t.replace(/<[^>]*>/g, ' ') : t)[0])
        : undefined;
    const sources = detected ? detected.map((d) => d.language) : job.texts.map(() => job.source);
    const translated = new Array<string>(job.texts.length);
    const alternatives = job.texts.map((): string[] => []);
    // Texts grouped by source language: each group one pass through the pipeline.
    const groups = new Map<string, number[]>();
    sources.forEach((s, i) => groups.set(s, [...(groups.get(s) ?? []), i]));
    await Promise.all(
      [...groups].map(async ([source, idx]) => {
        const texts = idx.map((i) => job.texts[i]);
        if (source === job.target) {
          idx.forEach((i) => (translated[i] = job.texts[i]));
          return;
        }
        const { best, alts } = await this.translateGroup(
          texts,
          source,
          job,
          ctx,
          idx.map((i) => job.names?.[i] ?? `q[${i}]`),
        );
        idx.forEach((i, k) => {
          translated[i] = best[k];
          alternatives[i] = alts.map((a) => a[k]);
        });
      }),
    );
    return { translated, alternatives, ...(detected ? { detected } : {}) };
  }

  /**
   * The sentence translator of a direction: one decode, or two through English. `last` holds, per
   * sentence of the latest call, its best translation and alternatives (from the options' nBest):
   * through English, the alternatives are the second hop's hypotheses for the first hop's best
   * English (each English text rebuilt from its sentences' k-th hypotheses), so a pivot costs no
   * more decoding than a direct pair.
   */
  sentenceTranslator(
    source: string,
    target: string,
    options: TranslateOptions,
    ctx: RequestContext,
  ): TranslateSentences & { last: Array<Pick<Translation, 'text' | 'alternatives'>> } {
    const route = this.route(source, target);
    if (route === undefined) throw new InputError(`unsupported pair ${source}-${target}`);
    const hop =
      (direction: Direction, opts: TranslateOptions, keep?: (results: Translation[]) => void): TranslateSentences =>
      async (sentences) => {
        const ids = sentences.map((s) => this.encode(s, direction));
        ctx.deadline ??= Date.now() + ctx.timeoutMs;
        const results = await this.submit(direction, ids, opts, {
          deadline: ctx.deadline,
          signal: ctx.signal,
          client: ctx.client,
        });
        keep?.(results);
        return results.map((r) => r.text);
      };
    const fn = Object.assign(
      async (sentences: string[]) => {
        if (route.length === 1) return hop(route[0], options, (r) => (fn.last = r))(sentences);
        // Earlier hops decode greedily; a pivot sentence longer than the model takes is cut like any text.
        const english = await hop(route[0], {})(sentences);
        const tooLong = this.tooLongFor(route[1]);
        let second: Translation[] = [];
        const best = await translateTexts(
          english,
          hop(route[1], options, (r) => (second = r)),
          tooLong,
        );
        const alts: string[][] = [];
        for (let k = 0; k < (options.nBest ?? 1) - 1; k++)
          alts.push(await translateTexts(english, async () => second.map((r) => r.alternatives[k] ?? r.text), tooLong));
        fn.last = best.map((text, i) => ({ text, alternatives: alts.map((a) => a[i]) }));
        return best;
      },
      { last: [] as Array<Pick<Translation, 'text' | 'alternatives'>> },
    );
    return fn;
  }

  private async translateGroup(
    texts: string[],
    source: string,
    job: TextJob,
    ctx: RequestContext,
    names: string[],
  ): Promise<{ best: string[]; alts: string[][] }> {
    const run = this.sentenceTranslator(source, job.target, job.options, ctx);
    const tooLong = this.tooLongFor(this.firstHop(source, job.target));
    if (job.format === 'html') return { best: await translateHtml(texts, run, tooLong, names), alts: [] };
    const best = await translateTexts(texts, run, tooLong);
    if (job.alternatives === 0) return { best, alts: [] };
    // Alternatives: each text again from its sentences' k-th hypotheses (no new decoding).
    const kept = run.last;
    const alts: string[][] = [];
    for (let k = 0; k < job.alternatives; k++) {
      alts.push(await translateTexts(texts, async () => kept.map((r) => r.alternatives[k] ?? r.text), tooLong));
    }
    return { best, alts };
  }

  /** Translates a file's content by its kind. */
  async translateFile(
    kind: 'txt' | 'html' | 'po',
    name: string,
    content: string,
    source: string,
    target: string,
    ctx: RequestContext,
  ): Promise<string> {
    this.checkLanguages(source, target);
    const src = source === 'auto' ? this.detect(content.slice(0, 2000))[0].language : source;
    if (src === target) return content;
    if (kind === 'po') {
      try {
        return await translateCatalog(
          content,
          target,
          this.sentenceTranslator(src, target, {}, ctx),
          this.tooLongFor(this.firstHop(src, target)),
        );
      } catch (err) {
        if (err instanceof CatalogError) err.message = `${name}: ${err.message}`;
        throw err;
      }
    }
    const result = await this.translate(
      {
        texts: [content],
        source: src,
        target,
        format: kind === 'html' ? 'html' : 'text',
        alternatives: 0,
        options: {},
        names: [name],
      },
      ctx,
    );
    return result.translated[0];
  }
}
