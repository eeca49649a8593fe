// The flag helpers every `taskmoe` subcommand parses with: usage errors (exit status 2) name the flag.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A usage mistake: printed with a pointer to --help, exit status 2. */
export class UsageError extends Error {}

/** Progress and notes go to stderr, so stdout carries only a subcommand's results. */
export const log = (msg: string) => console.error(msg);

export type Flags = Record<string, string | boolean | undefined>;

export function parse(
  args: string[],
  options: ParseArgsConfig['options'],
  allowPositionals = false,
): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals,
      strict: true,
    });
    return { flags: values as Flags, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function required(flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function positiveInt(flags: Flags, name: string): number | undefined {
  return intAtLeast(flags, name, 1, 'a positive integer');
}

export function nonNegativeInt(flags: Flags, name: string): number | undefined {
  return intAtLeast(flags, name, 0, 'a non-negative integer');
}

export function intAtLeast(flags: Flags, name: string, min: number, what: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be ${what}, got "${v}"`);
  return n;
}

/** A comma-separated list flag: --languages de,fr -> ['de', 'fr']. */
export function listFlag(flags: Flags, name: string): string[] | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v.split(',').filter((x) => x !== '') : undefined;
}

export function dtypeFlag(flags: Flags): 'float32' | 'float16' | undefined {
  const v = flags.dtype;
  if (v === undefined) return undefined;
  if (v !== 'float32' && v !== 'float16') throw new UsageError(`--dtype must be float32 or float16, got "${v}"`);
  return v;
}
