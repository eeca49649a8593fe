// The `taskmoe` command: dispatch to one handler per subcommand, each parsing its own flags
// (grouped by concern in ./*-commands.ts); `serve` lives here.
import * as fs from 'node:fs';
import { SETTINGS, SettingsError, resolveSettings } from '../server/settings.ts';
import { serve } from '../server/serve.ts';
import { importCommand } from '../import/command.ts';
import { cmdBench } from './bench-commands.ts';
import { cmdAverage, cmdConvert, cmdExtract, cmdInit, cmdInspect } from './checkpoint-commands.ts';
import { UsageError, log, parse } from './flags.ts';
import { cmdTokenizer, cmdTrain } from './train-commands.ts';
import { cmdEval, cmdTranslate } from './translate-commands.ts';
import { USAGE } from './usage.ts';

async function cmdServe(args: string[]): Promise<number> {
  const { flags } = parse(
    args,
    Object.fromEntries(
      SETTINGS.map((s) => [s.flag, { type: s.kind === 'bool' ? ('boolean' as const) : ('string' as const) }]),
    ),
  );
  let settings;
  try {
    settings = resolveSettings(flags as Record<string, string | boolean | undefined>);
  } catch (err) {
    if (err instanceof SettingsError) throw new UsageError(err.message);
    throw err;
  }
  if (flags.model === undefined && process.env.TASKMOE_MODEL === undefined && !fs.existsSync(settings.modelDir)) {
    throw new Error(`no --model given and the built-in demo model is missing at ${settings.modelDir}`);
  }
  await serve(settings, log);
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: cmdServe,
  train: cmdTrain,
  eval: cmdEval,
  init: cmdInit,
  extract: cmdExtract,
  export: (args) => import('../onnx/export-command.ts').then((m) => m.exportCommand(args)),
  convert: cmdConvert,
  average: cmdAverage,
  inspect: cmdInspect,
  translate: cmdTranslate,
  bench: cmdBench,
  tokenizer: cmdTokenizer,
  import: importCommand,
  keys: async (args) => (await import('../server/front-door/keys-cli.ts')).runKeys(args),
};

/** Runs the CLI; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (run === undefined) {
    console.error(`taskmoe: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`taskmoe ${command}: ${err.message} (see taskmoe --help)`);
      return 2;
    }
    throw err;
  }
}
