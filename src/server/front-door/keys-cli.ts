// `taskmoe keys add|list|remove`: manage the API keys of a server's data directory (--data-dir or
// TASKMOE_DATA_DIR, as `taskmoe serve` reads them). A running server sees changes at once.
import { parseArgs } from 'node:util';
import { resolveSettings } from '../settings.ts';
import { type ApiKey, KeyStore, keyDbPath } from './key-store.ts';

export const KEYS_USAGE = `Usage:
  taskmoe keys add [--req-per-minute N] [--chars-per-day N] [--name TEXT] [--data-dir DIR]
      Creates a key and prints it. Limits left out follow the server's --req-per-minute / --chars-per-day.
  taskmoe keys list [--json] [--data-dir DIR]
  taskmoe keys remove KEY [--data-dir DIR]`;

/** A mistake in the command line; the CLI prints it with usage and exits 2. */
export class KeysUsageError extends Error {}

function limit(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new KeysUsageError(`--${name} must be a non-negative integer (0: unlimited), got "${v}"`);
  return n;
}

function describe(k: ApiKey): string {
  const l = (n: number | null, unit: string) =>
    n === null ? `server default ${unit}` : n === 0 ? `unlimited ${unit}` : `${n} ${unit}`;
  return `${k.key}  ${l(k.reqPerMinute, 'req/min')}, ${l(k.charsPerDay, 'chars/day')}  ${k.createdAt}${k.name ? `  ${k.name}` : ''}`;
}

/** Runs a keys subcommand, printing to stdout; returns the exit status. */
export function keysCommand(args: string[], out: (line: string) => void = console.log): number {
  const [action, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        'req-per-minute': { type: 'string' },
        'chars-per-day': { type: 'string' },
        name: { type: 'string' },
        'data-dir': { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new KeysUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const dataDir = resolveSettings({ 'data-dir': values['data-dir'] }).dataDir;
  if (action === 'add') {
    if (positionals.length > 0)
      throw new KeysUsageError(`keys add takes no positional arguments, got "${positionals[0]}"`);
    const opts = {
      name: values.name,
      reqPerMinute: limit(values['req-per-minute'], 'req-per-minute'),
      charsPerDay: limit(values['chars-per-day'], 'chars-per-day'),
    };
    const store = KeyStore.open(keyDbPath(dataDir));
    try {
      const key = store.add(opts);
      out(key.key);
      console.error(`added to ${store.path}: ${describe(key)}`);
    } finally {
      store.close();
    }
    return 0;
  }
  if (action === 'list') {
    const store = KeyStore.open(keyDbPath(dataDir));
    try {
      const keys = store.list();
      if (values.json) out(JSON.stringify(keys, null, 2));
      else if (keys.length === 0) console.error(`no keys in ${store.path}`);
      else for (const k of keys) out(describe(k));
    } finally {
      store.close();
    }
    return 0;
  }
  if (action === 'remove') {
    if (positionals.length !== 1) throw new KeysUsageError('keys remove takes one KEY');
    const store = KeyStore.open(keyDbPath(dataDir));
    try {
      if (!store.remove(positionals[0])) {
        console.error(`taskmoe keys remove: no key "${positionals[0]}" in ${store.path}`);
        return 1;
      }
      console.error(`removed ${positionals[0]} from ${store.path}`);
    } finally {
      store.close();
    }
    return 0;
  }
  throw new KeysUsageError(action === undefined ? 'keys needs add, list or remove' : `unknown keys action "${action}"`);
}

/** The CLI's entry: usage mistakes print the usage and exit 2. */
export async function runKeys(args: string[]): Promise<number> {
  try {
    return keysCommand(args);
  } catch (err) {
    if (!(err instanceof KeysUsageError)) throw err;
    console.error(`taskmoe keys: ${err.message}\n${KEYS_USAGE}`);
    return 2;
  }
}
