// The Hugging Face fixtures (test/fixtures/hf, written by scripts/hf-fixtures.py): each tiny random
// model imported into a temp checkpoint, with what Transformers computed for the same inputs.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { importHf } from '../../src/import/hf-import.ts';

export const HF_FIXTURES = ['marian', 'marian-separate', 'm2m100', 'nllb-moe'];

const FIXTURES = path.join(import.meta.dirname, '../fixtures', 'hf');

export interface Reference {
  texts: string[];
  sources: number[][];
  /** Teacher-forced decoder inputs and Transformers' logits at each of their positions. */
  logits: { decoder: number[]; logits: number[][] }[];
  greedy: number[][];
  beam: number[][];
  max_new_tokens: number;
  source: string;
  target: string;
}

/** Imports fixture `name` into a fresh temp directory: the checkpoint's directory and the reference. */
export async function importedFixture(name: string): Promise<{ dir: string; ref: Reference }> {
  const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'reference.json'), 'utf8')) as Reference;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `taskmoe-hf-${name}-`));
  await importHf(path.join(FIXTURES, name, 'model'), path.join(dir, 'ckpt'), {
    sources: [ref.source],
    targets: [ref.target],
  });
  return { dir: path.join(dir, 'ckpt'), ref };
}

/** Transformers' generate output without the decoder start, the forced language token and the final EOS. */
export function outputTokens(seq: number[], forced: number, eos: number): number[] {
  const body = seq.slice(1 + forced);
  return body[body.length - 1] === eos ? body.slice(0, -1) : body;
}
