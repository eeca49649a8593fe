// API keys and what each client has used, in one SQLite file (better-sqlite3) beside the server's
// data. Keys and usage live in the same file so that `taskmoe keys remove` and a restart are seen
// at once, and several server processes on one host share one count.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';

export interface ApiKey {
  key: string;
  name: string;
  /** Requests per minute; null: the server's --req-per-minute. */
  reqPerMinute: number | null;
  /** Characters translated per UTC day; null: the server's --chars-per-day. */
  charsPerDay: number | null;
  createdAt: string;
}

export interface NewKey {
  name?: string;
  reqPerMinute?: number;
  charsPerDay?: number;
}

/** A key as clients send it: what `keys add` makes (a UUID) or any other 8-128 URL-safe characters. */
export const KEY_PATTERN = /^[A-Za-z0-9_-]{8,128}$/;

export class KeyStoreError extends Error {}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (
  key TEXT PRIMARY KEY,
  name TEXT NOT NULL DEFAULT '',
  req_per_minute INTEGER,
  chars_per_day INTEGER,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
  client TEXT NOT NULL,
  window TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  used INTEGER NOT NULL,
  PRIMARY KEY (client, window)
);
`;

/** The database file inside a data directory. */
export function keyDbPath(dataDir: string): string {
  return path.join(dataDir, 'keys.sqlite');
}

export class KeyStore {
  private readonly byKey: Database.Statement;
  private readonly limitsByKey: Database.Statement;

  private constructor(
    readonly path: string,
    readonly db: Database.Database,
  ) {
    this.byKey = db.prepare('SELECT * FROM api_keys WHERE key = ?');
    // The guard's read, on every request: two columns as an array, no row object.
    this.limitsByKey = db.prepare('SELECT req_per_minute, chars_per_day FROM api_keys WHERE key = ?').raw();
  }

  /** Opens (creating on first use) the database; a failure names the path. */
  static open(file: string): KeyStore {
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const db = new Database(file);
      try {
        // WAL: readers never wait for the writer; NORMAL sync is durable across a process crash.
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.pragma('busy_timeout = 5000');
        db.exec(SCHEMA);
      } catch (err) {
        db.close();
        throw err;
      }
      // Keys are secrets: only the owner may read the file.
      fs.chmodSync(file, 0o600);
      return new KeyStore(file, db);
    } catch (err) {
      throw new KeyStoreError(`cannot open the API key database at ${file}: ${(err as Error).message}`);
    }
  }

  add(opts: NewKey = {}): ApiKey {
    const key: ApiKey = {
      key: crypto.randomUUID(),
      name: opts.name ?? '',
      reqPerMinute: opts.reqPerMinute ?? null,
      charsPerDay: opts.charsPerDay ?? null,
      createdAt: new Date().toISOString(),
    };
    this.db
      .prepare('INSERT INTO api_keys (key, name, req_per_minute, chars_per_day, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(key.key, key.name, key.reqPerMinute, key.charsPerDay, key.createdAt);
    return key;
  }

  list(): ApiKey[] {
    return (this.db.prepare('SELECT * FROM api_keys ORDER BY created_at, key').all() as Row[]).map(fromRow);
  }

  /** Removes a key and its usage; false when there was no such key. */
  remove(key: string): boolean {
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM usage WHERE client = ?').run(`key:${key}`);
      return this.db.prepare('DELETE FROM api_keys WHERE key = ?').run(key).changes > 0;
    })();
  }

  get(key: string): ApiKey | undefined {
    const row = this.byKey.get(key) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  /** A key's own limits (null: the server's), or undefined for a key that does not exist. */
  limitsOf(key: string): [reqPerMinute: number | null, charsPerDay: number | null] | undefined {
    return this.limitsByKey.get(key) as [number | null, number | null] | undefined;
  }

  close(): void {
    this.db.close();
  }
}

interface Row {
  key: string;
  name: string;
  req_per_minute: number | null;
  chars_per_day: number | null;
  created_at: string;
}

function fromRow(r: Row): ApiKey {
  return {
    key: r.key,
    name: r.name,
    reqPerMinute: r.req_per_minute,
    charsPerDay: r.chars_per_day,
    createdAt: r.created_at,
  };
}
