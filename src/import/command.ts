// `taskmoe import --from hf SRC_DIR --out DIR [--source xx[,yy]] [--target xx[,yy]] [--dtype float16]`
import { parseArgs } from 'node:util';
import { initBackend } from '../backend/index.ts';
import { CheckpointReader } from '../models/checkpoint.ts';
import { inspectModel } from '../models/inspect.ts';
import { importHf } from './hf-import.ts';

export const IMPORT_USAGE = `  taskmoe import --from hf SRC_DIR --out DIR [--source xx[,yy]] [--target xx[,yy]] [--dtype float32|float16]
      Imports a Hugging Face MarianMTModel (OPUS-MT), M2M100ForConditionalGeneration (M2M-100, NLLB-200)
      or NllbMoeForConditionalGeneration checkpoint (model.safetensors). --source/--target name a Marian
      model's pair, or keep only these languages of a multilingual one (default: all its pairs).
`;

const list = (v: unknown) =>
  typeof v === 'string'
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;

export async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      from: { type: 'string' },
      out: { type: 'string' },
      source: { type: 'string' },
      target: { type: 'string' },
      dtype: { type: 'string' },
    },
  });
  if (values.from !== 'hf')
    throw new Error(
      `import: --from hf is required (the only source format so far), got ${JSON.stringify(values.from)}`,
    );
  if (positionals.length !== 1) throw new Error('import: give exactly one SRC_DIR (a Hugging Face model directory)');
  if (values.out === undefined) throw new Error('import: --out DIR is required');
  const dtype = values.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16')
    throw new Error(`import: --dtype must be float32 or float16, got "${dtype}"`);
  await initBackend({ log: (m) => console.error(m) });
  const cfg = await importHf(positionals[0], values.out, {
    sources: list(values.source),
    targets: list(values.target),
    dtype,
  });
  const info = inspectModel(await CheckpointReader.open(values.out));
  console.error(
    `wrote ${values.out}: ${info.params.total} parameters, ${cfg.languages.length} languages, ${cfg.pairs.length} pairs (${dtype})`,
  );
  return 0;
}
