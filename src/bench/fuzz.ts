// Hostile request bodies for the fault benchmark and the fault tests: JSON objects whose fields take
// values of every wrong type and size, and raw bytes. Seeded, so that a failing body can be found again.
import { mulberry32 } from '../util/random.ts';

const VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  '',
  'x',
  'en',
  'de',
  [],
  [null],
  {},
  { q: 1 },
  'é\u0000\ud800',
  Array(300).fill('x'),
];
const FIELDS = ['q', 'source', 'target', 'alternatives', 'beam_size', 'max_length', 'format', 'api_key', 'extra'];

/** `n` JSON objects, each field of a translate request present half the time with a hostile value. */
export function fuzzJsonBodies(n: number, seed: number): string[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const body: Record<string, unknown> = {};
    for (const f of FIELDS) if (rnd() < 0.5) body[f] = VALUES[Math.floor(rnd() * VALUES.length)];
    return JSON.stringify(body);
  });
}

/** `n` bodies of 1-64 random bytes, as latin1 strings. */
export function fuzzByteBodies(n: number, seed: number): string[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () =>
    Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256))).toString('latin1'),
  );
}
