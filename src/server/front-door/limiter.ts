// Fixed-window quotas kept in the key database: requests per minute and characters per UTC day,
// per client (an API key, or an address without one). A request is checked and counted in one
// immediate transaction, so neither concurrent requests nor other server processes sharing the
// file can take a client past its limit, and the counts survive a restart.
import type Database from 'better-sqlite3';

export interface Limits {
  /** 0: unlimited. */
  reqPerMinute: number;
  /** 0: unlimited. */
  charsPerDay: number;
}

/** The state of the window a response reports in its X-RateLimit-* headers. */
export interface WindowState {
  limit: number;
  remaining: number;
  /** Seconds until the window starts afresh. */
  resetSeconds: number;
}

export type Admission =
  | { ok: true; window?: WindowState }
  | { ok: false; reason: 'rate_requests' | 'rate_chars'; message: string; window: WindowState };

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

interface Usage {
  start_ms: number;
  used: number;
}

export class Limiter {
  private readonly read: Database.Statement;
  private readonly write: Database.Statement;
  private readonly prune: Database.Statement;
  private readonly admitTx: (client: string, limits: Limits, chars: number) => Admission;

  constructor(
    db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {
    // Both windows of a client in one read (the primary key's prefix).
    this.read = db.prepare('SELECT window, start_ms, used FROM usage WHERE client = ?');
    this.write = db.prepare(
      'INSERT INTO usage (client, window, start_ms, used) VALUES (?, ?, ?, ?) ON CONFLICT (client, window) DO UPDATE SET start_ms = excluded.start_ms, used = excluded.used',
    );
    this.prune = db.prepare(
      "DELETE FROM usage WHERE (window = 'minute' AND start_ms < ?) OR (window = 'day' AND start_ms < ?)",
    );
    const tx = db.transaction((client: string, limits: Limits, chars: number) =>
      this.admitInTransaction(client, limits, chars),
    );
    this.admitTx = (...args) => tx.immediate(...args);
  }

  /** Checks one request of `chars` characters against `client`'s limits and, if it passes, counts it. */
  admit(client: string, limits: Limits, chars: number): Admission {
    if (unlimited(limits)) return { ok: true };
    return this.admitTx(client, limits, chars);
  }

  /**
   * `admit` inside a write transaction (`BEGIN IMMEDIATE`) that the caller holds, so that other
   * reads (the key lookup) share its one lock and commit instead of taking their own.
   */
  admitInTransaction(client: string, limits: Limits, chars: number): Admission {
    if (unlimited(limits)) return { ok: true };
    return this.check(client, limits, chars, this.clock());
  }

  /** Forgets windows that have ended (their counts no longer matter). */
  pruneEnded(): number {
    const now = this.clock();
    return this.prune.run(windowStart(now, MINUTE_MS), windowStart(now, DAY_MS)).changes;
  }

  private check(client: string, limits: Limits, chars: number, now: number): Admission {
    const minute: Usage = { start_ms: windowStart(now, MINUTE_MS), used: 0 };
    const day: Usage = { start_ms: windowStart(now, DAY_MS), used: 0 };
    for (const row of this.read.all(client) as (Usage & { window: string })[]) {
      const current = row.window === 'minute' ? minute : day;
      // A count from an ended window no longer matters.
      if (row.start_ms === current.start_ms) current.used = row.used;
    }
    const minuteState = (used: number): WindowState =>
      state(limits.reqPerMinute, used, minute.start_ms + MINUTE_MS, now);
    if (limits.reqPerMinute > 0 && minute.used + 1 > limits.reqPerMinute) {
      return {
        ok: false,
        reason: 'rate_requests',
        message: `rate limit reached: ${limits.reqPerMinute} requests per minute`,
        window: minuteState(minute.used),
      };
    }
    if (limits.charsPerDay > 0 && day.used + chars > limits.charsPerDay) {
      const left = limits.charsPerDay - day.used;
      return {
        ok: false,
        reason: 'rate_chars',
        message: `character limit reached: ${limits.charsPerDay} characters per day (UTC), ${left} left today, this request has ${chars}`,
        window: state(limits.charsPerDay, day.used, day.start_ms + DAY_MS, now),
      };
    }
    if (limits.reqPerMinute > 0) this.write.run(client, 'minute', minute.start_ms, minute.used + 1);
    if (limits.charsPerDay > 0) this.write.run(client, 'day', day.start_ms, day.used + chars);
    if (limits.reqPerMinute > 0) return { ok: true, window: minuteState(minute.used + 1) };
    return { ok: true, window: state(limits.charsPerDay, day.used + chars, day.start_ms + DAY_MS, now) };
  }
}

function unlimited(limits: Limits): boolean {
  return limits.reqPerMinute === 0 && limits.charsPerDay === 0;
}

function windowStart(now: number, length: number): number {
  return Math.floor(now / length) * length;
}

function state(limit: number, used: number, endMs: number, now: number): WindowState {
  return { limit, remaining: Math.max(0, limit - used), resetSeconds: Math.max(1, Math.ceil((endMs - now) / 1000)) };
}
