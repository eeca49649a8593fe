// Load testing a running server, shared by `taskmoe bench server` and the deployment checks and
// benchmarks in scripts/: a free port, waiting for an endpoint, a closed-loop HTTP client, and
// reading Prometheus's text exposition format.
import * as http from 'node:http';
import * as net from 'node:net';

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether `url` (http://) answers 2xx within two seconds (a connection refused throws). No keep-alive: an idle
 * connection left open by a probe would hold up the server's graceful shutdown.
 */
export function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 2 s`)));
    req.on('error', reject);
  });
}

/**
 * Polls `probe` until it returns true. Throws after `timeoutMs`, or as soon as `exited` (the
 * process being waited for) returns a reason; `context` (a log tail, say) ends either message.
 */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; exited?: () => string | undefined; context?: () => string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  const context = () => (opts.context === undefined ? '' : `: ${opts.context()}`);
  while (Date.now() < deadline) {
    const exited = opts.exited?.();
    if (exited !== undefined) throw new Error(`${exited} while waiting for ${what}${context()}`);
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${context()}`);
}

/** One answer the closed loop got: its HTTP status (or the error's name when none came) and when. */
export interface Answer {
  /** The request's index, in the order the loop sent them. */
  index: number;
  status: number | string;
  sentMs: number;
  doneMs: number;
}

/**
 * Closed loop: `concurrency` clients each send a request, wait for its answer, and send the next,
 * until `request(i)` returns undefined (no more work) or `stop()` says so after an answer. Times
 * are performance.now() milliseconds; `onAnswer` sees every answer as it arrives.
 */
export async function closedLoop(opts: {
  concurrency: number;
  request: (i: number) => { url: string; body: unknown } | undefined;
  onAnswer: (a: Answer) => void;
  stop?: () => boolean;
  timeoutMs?: number;
}): Promise<void> {
  let next = 0;
  const client = async () => {
    while (!(opts.stop?.() ?? false)) {
      const index = next++;
      const req = opts.request(index);
      if (req === undefined) return;
      const sentMs = performance.now();
      let status: number | string;
      try {
        const r = await fetch(req.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(req.body),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
        });
        await r.arrayBuffer();
        status = r.status;
      } catch (err) {
        status = (err as Error).name;
      }
      opts.onAnswer({ index, status, sentMs, doneMs: performance.now() });
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, client));
}

/** One sample of Prometheus's text format: `name{label="value",...} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a /metrics page (comments and blank lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels` (all of them when none are given). */
export function sumMetric(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
