// `taskmoe evaluate`: BLEU and chrF of a model per direction over a corpus directory, next to the
// copy-the-source baseline (which scores well on software messages full of placeholders).
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { directionsOf, pairsFor, readCorpus } from '../data/corpus.ts';
import { pairKey } from '../models/config.ts';
import { Translator } from '../translator/index.ts';
import { corpusBleu, corpusChrf } from './bleu-chrf.ts';

export interface EvaluateOptions {
  /** Checkpoint directory. */
  model: string;
  /** Corpus directory of en-XX.tsv files; each file is scored in both directions. */
  data: string;
  /** Write the result here as JSON. */
  json?: string;
  /** Write each direction's sources, references and hypotheses here, as DIRECTION.json (for paired significance tests). */
  hypotheses?: string;
  /** Beam size (default 1, greedy). */
  beam?: number;
  /** Sentences decoded together (default 32). */
  batchSize?: number;
  /** Only these languages (default: all the model and the corpus share). */
  languages?: string[];
  /** Score at most this many pairs per file (default: all). */
  maxPerFile?: number;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface DirectionScores {
  direction: string;
  sentences: number;
  bleu: number;
  chrf: number;
  /** Scores of the source copied unchanged as the translation. */
  copyBleu: number;
  copyChrf: number;
}

export interface EvaluationResult {
  directions: DirectionScores[];
  /** Unweighted means over directions. */
  average: Omit<DirectionScores, 'direction' | 'sentences'>;
}

export async function evaluate(opts: EvaluateOptions): Promise<EvaluationResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const translator = await Translator.load(opts.model);
  try {
    const languages = (opts.languages ?? translator.model.config.languages).filter((l) =>
      translator.model.config.languages.includes(l),
    );
    const corpus = await readCorpus(opts.data, { languages, maxPerFile: opts.maxPerFile });
    const directions = directionsOf(corpus.languages).filter((d) =>
      translator.pairs.includes(pairKey(d.source, d.target)),
    );
    if (directions.length === 0) throw new Error(`the model serves none of the directions of ${opts.data}`);
    const batchSize = opts.batchSize ?? 32;
    const scores: DirectionScores[] = [];
    for (const dir of directions) {
      const pairs = pairsFor(corpus.files, dir);
      const sources = pairs.map((p) => p.source);
      const references = pairs.map((p) => p.target);
      const hypotheses: string[] = [];
      const started = Date.now();
      // Chunks of several batches, so that progress shows while a direction is decoded.
      for (let start = 0; start < sources.length; start += 8 * batchSize) {
        const chunk = sources.slice(start, start + 8 * batchSize);
        hypotheses.push(
          ...translator.translate(chunk, dir, { beamSize: opts.beam ?? 1, batchSize }).map((t) => t.text),
        );
        const rate = hypotheses.length / ((Date.now() - started) / 1000);
        log(
          `evaluate ${pairKey(dir.source, dir.target)}: ${hypotheses.length}/${sources.length} sentences, ${rate.toFixed(1)} sent/s`,
        );
      }
      if (opts.hypotheses !== undefined) {
        await fsp.mkdir(opts.hypotheses, { recursive: true });
        const file = path.join(opts.hypotheses, `${pairKey(dir.source, dir.target)}.json`);
        await fsp.writeFile(file, JSON.stringify({ sources, references, hypotheses }) + '\n');
      }
      scores.push({
        direction: pairKey(dir.source, dir.target),
        sentences: pairs.length,
        bleu: corpusBleu(hypotheses, references).score,
        chrf: corpusChrf(hypotheses, references),
        copyBleu: corpusBleu(sources, references).score,
        copyChrf: corpusChrf(sources, references),
      });
    }
    const mean = (key: 'bleu' | 'chrf' | 'copyBleu' | 'copyChrf') =>
      scores.reduce((a, s) => a + s[key], 0) / scores.length;
    const result: EvaluationResult = {
      directions: scores,
      average: { bleu: mean('bleu'), chrf: mean('chrf'), copyBleu: mean('copyBleu'), copyChrf: mean('copyChrf') },
    };
    if (opts.json !== undefined) await fsp.writeFile(opts.json, JSON.stringify(result, null, 2) + '\n');
    return result;
  } finally {
    translator.dispose();
  }
}

/** The result as an aligned text table, one row per direction and an average row. */
export function formatEvaluation(r: EvaluationResult): string {
  const row = (name: string, s: Omit<DirectionScores, 'direction' | 'sentences'>, n: string) =>
    `${name.padEnd(9)}${n.padStart(7)}${s.bleu.toFixed(2).padStart(8)}${s.chrf.toFixed(2).padStart(8)}${s.copyBleu.toFixed(2).padStart(10)}${s.copyChrf.toFixed(2).padStart(10)}`;
  return [
    `${'pair'.padEnd(9)}${'sent'.padStart(7)}${'BLEU'.padStart(8)}${'chrF'.padStart(8)}${'copyBLEU'.padStart(10)}${'copyChrF'.padStart(10)}`,
    ...r.directions.map((s) => row(s.direction, s, String(s.sentences))),
    row('average', r.average, ''),
  ].join('\n');
}
