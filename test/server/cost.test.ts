import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientShareError, ClientShares, requestCost } from '../../src/server/cost.ts';
import { bearerMatches } from '../../src/server/metrics-access.ts';

test("a request costs texts x beam x each text's output limit (max_length, else the source-length default, within the model maximum)", () => {
  // The heavy request: 128 texts of ~95 tokens, beam 8, max_length 96.
  assert.equal(requestCost(new Array(128).fill(95), 8, 96, 96), 128 * 8 * 96);
  // Without max_length each text may produce 1.5 x its length + 10 tokens, at most the model's maximum.
  assert.equal(requestCost([4, 60], 1, undefined, 96), 6 + 10 + 96);
  assert.equal(requestCost([4], 3, 200, 96), 3 * 96);
});

test("a client's share of a worker is bounded; other clients and other workers are not affected; releasing frees it once", () => {
  const shares = new ClientShares(1000, () => 2);
  const a1 = shares.reserve('a', '0', 600);
  assert.throws(
    () => shares.reserve('a', '0', 500),
    (e: unknown) =>
      e instanceof ClientShareError &&
      e.retryAfterSeconds === 2 &&
      /600 decoder row-steps .* share of 1000/.test(e.message),
  );
  const b = shares.reserve('b', '0', 900);
  const a2 = shares.reserve('a', '1', 900);
  const a3 = shares.reserve('a', '0', 400);
  assert.equal(shares.heldBy('a', '0'), 1000);
  a1();
  a1();
  assert.equal(shares.heldBy('a', '0'), 400);
  a3();
  b();
  a2();
  assert.equal(shares.heldBy('a', '0') + shares.heldBy('b', '0') + shares.heldBy('a', '1'), 0);
  // A client holding nothing may send one request larger than its share (the per-request limit bounds it).
  shares.reserve('c', '0', 5000)();
});

test('the metrics bearer token must match exactly', () => {
  assert.ok(bearerMatches('Bearer s3cret', 's3cret'));
  assert.ok(bearerMatches('bearer s3cret', 's3cret'));
  assert.ok(!bearerMatches('Bearer s3cre', 's3cret'));
  assert.ok(!bearerMatches('Basic s3cret', 's3cret'));
  assert.ok(!bearerMatches(undefined, 's3cret'));
});
