// The fault suite's shared parts (test/server/faults*.test.ts): its model, requests and waits.
import type { TaskmoeServer } from '../../src/server/app.ts';
import { tinyConfig } from './engine.ts';

/** The fault suite's model: token-routed encoder, target-routed decoder. */
export const FAULT_CONFIG = tinyConfig('token', 'target');
export const FAULT_SEED = 31;

export function translate(server: TaskmoeServer, body: unknown, remoteAddress?: string) {
  return server.app.inject({
    method: 'POST',
    url: '/translate',
    payload: body as object,
    ...(remoteAddress ? { remoteAddress } : {}),
  });
}

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const texts = (n: number, text = 'Print the document') => Array.from({ length: n }, (_, i) => `${text} ${i}`);
