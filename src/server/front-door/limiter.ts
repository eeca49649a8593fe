// Fixed-window quotas kept in the key database: requests per minute and characters per UTC day,
// per client (an API key, or an address without one). The database's counts are authoritative and
// survive a restart; a process reserves a slice of a client's window in one immediate transaction
// (a grant: one request, or 1% of the limit when that is more) and admits from what it holds in
// memory until the slice is used up. So neither concurrent requests nor other server processes
// sharing the file can take a client past its limit, and a busy client costs one transaction per
// slice instead of one per request (the transaction was most of the guard's time on the event
// loop: docs/front-door.md). What a process holds unused is given back at the next grant and when
// it closes; a crash loses at most one slice per client (counted as used, never given twice).
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

/** A window's start and the count of all processes in it, as read or written at the last grant. */
interface Window {
  startMs: number;
  /** The database's count (admitted or held by any process) after this process's last grant. */
  counted: number;
  /** What this process holds of `counted` and has not admitted yet. */
  held: number;
}

interface Grant {
  minute: Window;
  day: Window;
}

/** A grant is at least what the request needs, and at least this share of the limit. */
const GRANT_SHARE = 0.01;

export class Limiter {
  private readonly read: Database.Statement;
  private readonly write: Database.Statement;
  private readonly giveBack: Database.Statement;
  private readonly prune: Database.Statement;
  private readonly grantTx: (client: string, limits: Limits, chars: number, now: number) => Admission;
  private readonly returnTx: () => void;
  /** What this process holds of each client's current windows. */
  private readonly grants = new Map<string, Grant>();

  constructor(
    db: Database.Database,
    private readonly clock: () => number = Date.now,
    /** 0: a transaction for every request (how the benchmark times the slow path). */
    private readonly grantShare = GRANT_SHARE,
  ) {
    // Both windows of a client in one read (the primary key's prefix).
    this.read = db.prepare('SELECT window, start_ms, used FROM usage WHERE client = ?');
    this.write = db.prepare(
      'INSERT INTO usage (client, window, start_ms, used) VALUES (?, ?, ?, ?) ON CONFLICT (client, window) DO UPDATE SET start_ms = excluded.start_ms, used = excluded.used',
    );
    this.giveBack = db.prepare(
      'UPDATE usage SET used = max(0, used - ?) WHERE client = ? AND window = ? AND start_ms = ?',
    );
    this.prune = db.prepare(
      "DELETE FROM usage WHERE (window = 'minute' AND start_ms < ?) OR (window = 'day' AND start_ms < ?)",
    );
    const grantTx = db.transaction((client: string, limits: Limits, chars: number, now: number) =>
      this.grant(client, limits, chars, now),
    );
    this.grantTx = (...args) => grantTx.immediate(...args);
    const returnTx = db.transaction(() => this.returnHeld());
    this.returnTx = () => returnTx.immediate();
  }

  /** Checks one request of `chars` characters against `client`'s limits and, if it passes, counts it. */
  admit(client: string, limits: Limits, chars: number): Admission {
    if (unlimited(limits)) return { ok: true };
    const now = this.clock();
    const g = this.grants.get(client);
    if (g !== undefined) {
      const requestHeld = limits.reqPerMinute === 0 || (current(g.minute, now, MINUTE_MS) && g.minute.held >= 1);
      const charsHeld = limits.charsPerDay === 0 || (current(g.day, now, DAY_MS) && g.day.held >= chars);
      if (requestHeld && charsHeld) {
        if (limits.reqPerMinute > 0) g.minute.held--;
        if (limits.charsPerDay > 0) g.day.held -= chars;
        return { ok: true, window: admittedState(limits, g, now) };
      }
    }
    return this.grantTx(client, limits, chars, now);
  }

  /** Forgets windows that have ended (their counts no longer matter). */
  pruneEnded(): number {
    const now = this.clock();
    // A slice of an ended window holds nothing any more.
    for (const [client, g] of this.grants) {
      const minuteHeld = current(g.minute, now, MINUTE_MS) ? g.minute.held : 0;
      const dayHeld = current(g.day, now, DAY_MS) ? g.day.held : 0;
      if (minuteHeld <= 0 && dayHeld <= 0) this.grants.delete(client);
    }
    return this.prune.run(windowStart(now, MINUTE_MS), windowStart(now, DAY_MS)).changes;
  }

  /** Gives back what this process holds and has not admitted (before the database closes). */
  close(): void {
    this.returnTx();
    this.grants.clear();
  }

  /** In the transaction: the client's counts with this process's unused slice given back, checked, and a new slice taken. */
  private grant(client: string, limits: Limits, chars: number, now: number): Admission {
    const minute = { startMs: windowStart(now, MINUTE_MS), used: 0 };
    const day = { startMs: windowStart(now, DAY_MS), used: 0 };
    for (const row of this.read.all(client) as { window: string; start_ms: number; used: number }[]) {
      const w = row.window === 'minute' ? minute : day;
      // A count from an ended window no longer matters.
      if (row.start_ms === w.startMs) w.used = row.used;
    }
    // What this process holds of the current windows is in the counts: it is given back first.
    const held = this.grants.get(client);
    if (held?.minute.startMs === minute.startMs) minute.used = Math.max(0, minute.used - held.minute.held);
    if (held?.day.startMs === day.startMs) day.used = Math.max(0, day.used - held.day.held);
    if (limits.reqPerMinute > 0 && minute.used + 1 > limits.reqPerMinute) {
      return {
        ok: false,
        reason: 'rate_requests',
        message: `rate limit reached: ${limits.reqPerMinute} requests per minute`,
        window: state(limits.reqPerMinute, minute.used, minute.startMs + MINUTE_MS, now),
      };
    }
    if (limits.charsPerDay > 0 && day.used + chars > limits.charsPerDay) {
      const left = limits.charsPerDay - day.used;
      return {
        ok: false,
        reason: 'rate_chars',
        message: `character limit reached: ${limits.charsPerDay} characters per day (UTC), ${left} left today, this request has ${chars}`,
        window: state(limits.charsPerDay, day.used, day.startMs + DAY_MS, now),
      };
    }
    // Refused above, nothing was written: the old slice stays held. Admitted: a new slice replaces it.
    const take = (limit: number, used: number, need: number) =>
      Math.min(limit - used, Math.max(need, Math.ceil(limit * this.grantShare)));
    const g: Grant = {
      minute: { startMs: minute.startMs, counted: minute.used, held: 0 },
      day: { startMs: day.startMs, counted: day.used, held: 0 },
    };
    if (limits.reqPerMinute > 0) {
      const n = take(limits.reqPerMinute, minute.used, 1);
      g.minute = { startMs: minute.startMs, counted: minute.used + n, held: n - 1 };
      this.write.run(client, 'minute', minute.startMs, g.minute.counted);
    }
    if (limits.charsPerDay > 0) {
      const n = take(limits.charsPerDay, day.used, chars);
      g.day = { startMs: day.startMs, counted: day.used + n, held: n - chars };
      this.write.run(client, 'day', day.startMs, g.day.counted);
    }
    // Only a slice with something left is worth remembering: memory stays bounded by busy clients.
    if (g.minute.held > 0 || g.day.held > 0) this.grants.set(client, g);
    else this.grants.delete(client);
    return { ok: true, window: admittedState(limits, g, now) };
  }

  private returnHeld(): void {
    for (const [client, g] of this.grants)
      for (const [name, w] of [
        ['minute', g.minute],
        ['day', g.day],
      ] as const)
        if (w.held > 0) this.giveBack.run(w.held, client, name, w.startMs);
  }
}

/** Whether a held window is the one `now` falls in. */
function current(w: Window, now: number, length: number): boolean {
  return w.startMs === windowStart(now, length);
}

/** The X-RateLimit-* state after an admission: of the minute window, or of the day when only that is limited. */
function admittedState(limits: Limits, g: Grant, now: number): WindowState {
  if (limits.reqPerMinute > 0)
    return state(limits.reqPerMinute, g.minute.counted - g.minute.held, g.minute.startMs + MINUTE_MS, now);
  return state(limits.charsPerDay, g.day.counted - g.day.held, g.day.startMs + DAY_MS, now);
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
