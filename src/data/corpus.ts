// Parallel text for training and evaluation. A corpus directory holds one `en-XX.tsv` per
// language: UTF-8, one `English<TAB>XX` pair a line, no header. English is the pivot, so
// every file serves both en→XX and XX→en. Several directories read as one corpus: the union of
// their languages, each language's pairs from every directory that has its file.

import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface Direction {
  source: string;
  target: string;
}

export interface SentencePair {
  source: string;
  target: string;
}

export interface CorpusStats {
  /** Path of the file read. */
  file: string;
  /** Lines examined (all of them unless `maxPerFile` stopped the read early). */
  lines: number;
  kept: number;
  skipped: {
    /** No TAB at all, blank lines included. */
    noTab: number;
    /** A side that is empty once trimmed. */
    emptySide: number;
    invalidUtf8: number;
    /** More than one TAB: which column is the translation is ambiguous, so the line is dropped. */
    extraTabs?: number;
  };
  /** Well-formed pairs already read from an earlier directory of the same corpus, not kept twice. */
  duplicates?: number;
}

export interface Corpus {
  /** 'en' followed by the other languages, sorted. */
  languages: string[];
  /** Pairs of each file keyed by its non-English language; `source` is English. */
  files: Map<string, SentencePair[]>;
  stats: CorpusStats[];
}

export interface ReadCorpusOptions {
  /** Only these languages ('en' may be listed and is implied); each must have a file in some directory. */
  languages?: string[];
  /** Keep at most this many pairs of each file (the first ones). */
  maxPerFile?: number;
}

const PIVOT = 'en';
const CORPUS_FILE = /^en-([A-Za-z0-9_-]+)\.tsv$/;
const NEWLINE = 0x0a;

type LineVerdict = SentencePair | 'noTab' | 'emptySide' | 'invalidUtf8' | 'extraTabs';

// One shared fatal decoder: a non-streaming decode() starts fresh each call, so one bad
// line cannot affect the next.
const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseLine(bytes: Uint8Array): LineVerdict {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return 'invalidUtf8';
  }
  const columns = text.split('\t');
  if (columns.length === 1) return 'noTab';
  if (columns.length > 2) return 'extraTabs';
  // Trimming also drops the '\r' of CRLF line endings.
  const english = columns[0]!.trim();
  const other = columns[1]!.trim();
  if (english === '' || other === '') return 'emptySide';
  return { source: english, target: other };
}

/** Yields the raw bytes of each line, without the '\n'; a trailing '\n' does not start a line. */
async function* rawLines(path: string): AsyncGenerator<Uint8Array> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path)) {
    let data = Buffer.concat([pending, chunk as Buffer]);
    let newline = data.indexOf(NEWLINE);
    while (newline !== -1) {
      yield data.subarray(0, newline);
      data = data.subarray(newline + 1);
      newline = data.indexOf(NEWLINE);
    }
    pending = data;
  }
  if (pending.length > 0) yield pending;
}

/** `seen` holds the pairs of this language read from earlier directories; a pair in it is counted, not kept. */
async function readPairFile(
  path: string,
  maxPairs: number,
  seen?: Set<string>,
): Promise<{ pairs: SentencePair[]; stats: CorpusStats }> {
  const stats: CorpusStats = {
    file: path,
    lines: 0,
    kept: 0,
    skipped: { noTab: 0, emptySide: 0, invalidUtf8: 0, extraTabs: 0 },
  };
  if (seen !== undefined) stats.duplicates = 0;
  const pairs: SentencePair[] = [];
  if (maxPairs <= 0) return { pairs, stats };
  for await (const line of rawLines(path)) {
    stats.lines++;
    const verdict = parseLine(line);
    if (typeof verdict === 'string') {
      stats.skipped[verdict] = (stats.skipped[verdict] ?? 0) + 1;
      continue;
    }
    if (seen?.has(`${verdict.source}\t${verdict.target}`)) {
      stats.duplicates!++;
      continue;
    }
    pairs.push(verdict);
    stats.kept++;
    if (stats.kept >= maxPairs) break;
  }
  return { pairs, stats };
}

/** Language code → file name of every `en-XX.tsv` in dir. */
async function listCorpusFiles(dir: string): Promise<Map<string, string>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new Error(`cannot read corpus directory ${dir}: ${(error as Error).message}`);
  }
  const byLanguage = new Map<string, string>();
  for (const name of names.sort()) {
    const language = CORPUS_FILE.exec(name)?.[1];
    if (language !== undefined && language !== PIVOT) byLanguage.set(language, name);
  }
  if (byLanguage.size === 0) throw new Error(`no en-XX.tsv files in corpus directory ${dir}`);
  return byLanguage;
}

function selectLanguages(available: Map<string, unknown>, requested: string[] | undefined, dirs: string[]): string[] {
  if (requested === undefined) return [...available.keys()].sort();
  const wanted = [...new Set(requested.filter((language) => language !== PIVOT))].sort();
  const missing = wanted.filter((language) => !available.has(language));
  if (missing.length > 0) {
    const where =
      dirs.length === 1
        ? `corpus directory ${dirs[0]} has no file`
        : `none of the corpus directories ${dirs.join(', ')} has a file`;
    throw new Error(`${where} for: ${missing.map((l) => `en-${l}.tsv`).join(', ')}`);
  }
  return wanted;
}

/**
 * Reads every `en-XX.tsv` in one directory or several. Each directory must hold at least one;
 * with several, a language's pairs are those of every directory that has its file, in the order
 * given, a pair already read from an earlier directory counted in `duplicates` and not kept again.
 * Malformed lines are counted in `stats` (one entry per file read) and skipped; only a missing
 * directory, one without corpus files, or a requested language without a file is an error.
 */
export async function readCorpus(dirs: string | string[], opts: ReadCorpusOptions = {}): Promise<Corpus> {
  const dirList = typeof dirs === 'string' ? [dirs] : dirs;
  if (dirList.length === 0) throw new Error('no corpus directory given');
  const listings = await Promise.all(dirList.map(async (dir) => ({ dir, files: await listCorpusFiles(dir) })));
  const available = new Map<string, true>();
  for (const { files } of listings) for (const language of files.keys()) available.set(language, true);
  const languages = selectLanguages(available, opts.languages, dirList);
  const maxPairs = opts.maxPerFile ?? Infinity;
  if (!(maxPairs >= 0)) throw new Error(`maxPerFile must be non-negative, got ${opts.maxPerFile}`);
  const files = new Map<string, SentencePair[]>();
  const stats: CorpusStats[] = [];
  for (const language of languages) {
    const pairs: SentencePair[] = [];
    const several = listings.filter(({ files: f }) => f.has(language)).length > 1;
    const seen = several ? new Set<string>() : undefined;
    for (const { dir, files: names } of listings) {
      const name = names.get(language);
      if (name === undefined) continue;
      const read = await readPairFile(join(dir, name), maxPairs, seen && pairs.length > 0 ? seen : undefined);
      for (const p of read.pairs) {
        pairs.push(p);
        seen?.add(`${p.source}\t${p.target}`);
      }
      stats.push(read.stats);
    }
    files.set(language, pairs);
  }
  return { languages: [PIVOT, ...languages], files, stats };
}

/** One line per file with skipped lines or duplicates: what was dropped and why. */
export function describeSkipped(stats: CorpusStats[]): string[] {
  return stats.flatMap((s) => {
    const reasons = Object.entries({ ...s.skipped, duplicate: s.duplicates ?? 0 }).filter(([, n]) => (n ?? 0) > 0);
    if (reasons.length === 0) return [];
    return [
      `${s.file}: kept ${s.kept} of ${s.lines} lines; skipped ${reasons.map(([why, n]) => `${n} ${why}`).join(', ')}`,
    ];
  });
}

/** en→XX then XX→en for each non-English language, languages sorted so order is stable. */
export function directionsOf(languages: string[]): Direction[] {
  const others = [...new Set(languages.filter((language) => language !== PIVOT))].sort();
  return others.flatMap((language) => [
    { source: PIVOT, target: language },
    { source: language, target: PIVOT },
  ]);
}

/** The pairs of one direction; XX→en swaps the sides of the en-XX file. */
export function pairsFor(files: Map<string, SentencePair[]>, dir: Direction): SentencePair[] {
  const fromEnglish = dir.source === PIVOT;
  if (fromEnglish === (dir.target === PIVOT)) {
    throw new Error(`direction ${dir.source}→${dir.target} must have English on exactly one side`);
  }
  const language = fromEnglish ? dir.target : dir.source;
  const pairs = files.get(language);
  if (pairs === undefined) throw new Error(`no corpus for language ${language}`);
  return fromEnglish ? pairs : pairs.map((pair) => ({ source: pair.target, target: pair.source }));
}

/**
 * Sampling probabilities p_i ∝ (n_i/N)^(1/T): T=1 samples in proportion to size, larger T
 * flattens towards uniform so small languages are seen more often.
 */
export function temperatureWeights(sizes: number[], T: number): number[] {
  if (!(T > 0)) throw new Error(`temperature must be positive, got ${T}`);
  if (sizes.some((n) => !(Number.isFinite(n) && n >= 0))) {
    throw new Error(`sizes must be finite and non-negative, got [${sizes.join(', ')}]`);
  }
  const total = sizes.reduce((sum, n) => sum + n, 0);
  if (total === 0) throw new Error('cannot weight an empty corpus: all sizes are zero');
  // An empty file gets no weight even at T=∞, where 0^0 would otherwise give it 1.
  const unnormalized = sizes.map((n) => (n === 0 ? 0 : (n / total) ** (1 / T)));
  const norm = unnormalized.reduce((sum, w) => sum + w, 0);
  return unnormalized.map((w) => w / norm);
}
