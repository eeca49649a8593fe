// `taskmoe export --onnx`: the CLI's side of export.ts, loaded only when the command runs.
import { initBackend } from '../backend/index.ts';
import { UsageError, parse, required } from '../cli/flags.ts';
import { exportOnnx } from './export.ts';

const log = (msg: string) => console.error(msg);

/** `taskmoe export --onnx ...`: returns the exit status. */
export async function exportCommand(args: string[]): Promise<number> {
  const { flags } = parse(args, {
    onnx: { type: 'boolean' },
    model: { type: 'string' },
    out: { type: 'string' },
    source: { type: 'string' },
    target: { type: 'string' },
  });
  if (flags.onnx !== true || (flags.source === undefined) !== (flags.target === undefined))
    throw new UsageError('usage: taskmoe export --onnx --model DIR --out DIR [--source xx --target yy]');
  await initBackend({ log });
  const dir =
    flags.source === undefined ? undefined : { source: flags.source as string, target: flags.target as string };
  log(
    `wrote ${flags.out}: ${(await exportOnnx(required(flags, 'model'), required(flags, 'out'), dir)).files.join(', ')}`,
  );
  return 0;
}
