import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readCorpus } from '../data/corpus.ts';
import { mulberry32 } from '../util/random.ts';

export interface TrainTokenizerOptions {
  /** Directory (or directories, read as one corpus) of `en-XX.tsv` files: `English<TAB>XX` per line, UTF-8, no header. */
  dataDir: string | string[];
  vocabSize: number;
  /** Path of the model to write; must end with `.model` (the `.vocab` lands beside it). */
  out: string;
  /** Languages to include; `en` is always added. Default: every `en-XX.tsv` in dataDir. */
  languages?: string[];
  sentencesPerLanguage?: number;
  seed?: number;
  /**
   * Share of characters that get their own piece; the rest fall back to bytes. Default 0.9995.
   * Small vocabularies over CJK text need less: every covered character takes a vocabulary slot.
   */
  characterCoverage?: number;
}

export interface TrainTokenizerResult {
  /** `en` first, then the other languages in alphabetical order (the order of the `<2xx>` tags). */
  languages: string[];
  sentences: number;
}

const DEFAULT_SENTENCES_PER_LANGUAGE = 20000;
const DEFAULT_SEED = 1;
const DEFAULT_CHARACTER_COVERAGE = 0.9995;

export async function trainTokenizer(opts: TrainTokenizerOptions): Promise<TrainTokenizerResult> {
  const settings = resolveSettings(opts);
  const byLanguage = await readSentencesByLanguage(opts.dataDir, opts.languages);
  const sample = sampleBalanced(byLanguage, settings.sentencesPerLanguage, settings.seed);
  const languages = [...byLanguage.keys()];

  const workDir = await mkdtemp(join(tmpdir(), 'taskmoe-spm-'));
  try {
    await writeFile(join(workDir, 'sentences.txt'), sample.join('\n') + '\n');
    // Paths relative to workDir: the model records --input and --model_prefix, and a random
    // temp directory in them would make the same training produce different bytes.
    await runSpmTrain(workDir, [
      '--input=sentences.txt',
      '--model_prefix=spm',
      `--vocab_size=${opts.vocabSize}`,
      '--model_type=unigram',
      '--byte_fallback=true',
      `--character_coverage=${settings.characterCoverage}`,
      '--pad_id=0',
      '--unk_id=1',
      '--bos_id=2',
      '--eos_id=3',
      `--user_defined_symbols=${languages.map((lang) => `<2${lang}>`).join(',')}`,
      `--input_sentence_size=${sample.length}`,
      '--shuffle_input_sentence=true',
      `--random_seed=${settings.seed}`,
    ]);
    await mkdir(dirname(opts.out), { recursive: true });
    await copyFile(join(workDir, 'spm.model'), opts.out);
    await copyFile(join(workDir, 'spm.vocab'), settings.vocabPath);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  return { languages, sentences: sample.length };
}

/** Checks the options up front, before any file is read. */
function resolveSettings(opts: TrainTokenizerOptions) {
  if (!opts.out.endsWith('.model')) {
    throw new Error(`tokenizer output path must end with .model, got ${opts.out}`);
  }
  requirePositiveInteger('vocabSize', opts.vocabSize);
  const sentencesPerLanguage = opts.sentencesPerLanguage ?? DEFAULT_SENTENCES_PER_LANGUAGE;
  requirePositiveInteger('sentencesPerLanguage', sentencesPerLanguage);
  const characterCoverage = opts.characterCoverage ?? DEFAULT_CHARACTER_COVERAGE;
  if (!(characterCoverage > 0 && characterCoverage <= 1)) {
    throw new Error(`characterCoverage must be in (0, 1], got ${characterCoverage}`);
  }
  return {
    vocabPath: opts.out.slice(0, -'.model'.length) + '.vocab',
    sentencesPerLanguage,
    characterCoverage,
    seed: opts.seed ?? DEFAULT_SEED,
  };
}

function requirePositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${value}`);
}

/** Distinct sentences per language, `en` first; English is pooled from every selected file. */
async function readSentencesByLanguage(dirs: string | string[], languages?: string[]): Promise<Map<string, string[]>> {
  const corpus = await readCorpus(dirs, { languages });
  const english = new Set<string>();
  const others = new Map<string, string[]>();
  for (const [lang, pairs] of corpus.files) {
    const foreign = new Set<string>();
    for (const { source, target } of pairs) {
      english.add(source);
      foreign.add(target);
    }
    others.set(lang, [...foreign]);
  }
  return new Map([['en', [...english]], ...others]);
}

/** Up to `perLanguage` sentences from each language, so big languages do not crowd out small ones. */
function sampleBalanced(byLanguage: Map<string, string[]>, perLanguage: number, seed: number): string[] {
  const random = mulberry32(seed);
  return [...byLanguage.values()].flatMap((sentences) => sampleWithoutReplacement(sentences, perLanguage, random));
}

/** Partial Fisher-Yates shuffle: the first `count` slots end up a uniform sample. */
function sampleWithoutReplacement<T>(items: T[], count: number, random: () => number): T[] {
  const pool = [...items];
  const take = Math.min(count, pool.length);
  for (let i = 0; i < take; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, take);
}

function runSpmTrain(cwd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('spm_train', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new Error(
              "spm_train not found on PATH: install Debian's sentencepiece package (apt-get install -y sentencepiece)",
            )
          : err,
      );
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`spm_train failed (${signal ?? `exit code ${code}`}):\n${lastLines(stderr, 10)}`));
    });
  });
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}
