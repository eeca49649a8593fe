// The worker RPC helper over an asynchronous channel: replies settle their own requests, whatever
// their order; forgotten requests ignore late replies; a failed channel rejects what waits and,
// when permanent, everything after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RpcClient, type WithId } from '../../src/util/rpc.ts';

type Req = { op: 'double' | 'never'; x: number };

/** A server on the other end of a channel that answers `double` requests in reverse order of arrival. */
function channel(): {
  rpc: RpcClient<Req, number>;
  arrived: (n: number) => Promise<void>;
  flush: () => void;
  close: () => void;
} {
  const held: WithId<Req>[] = [];
  // Messages cross as structured clones, asynchronously, as over a worker's port.
  const rpc = new RpcClient<Req, number>((m) => setImmediate(() => held.push(structuredClone(m))));
  const flush = () => {
    for (const m of held.splice(0).reverse()) if (m.op === 'double') setImmediate(() => rpc.resolve(m.id, 2 * m.x));
  };
  // Waits for n messages to cross. (A fixed sleep raced them: a timer due before the loop's first
  // turn fires ahead of setImmediate callbacks, which happened on a loaded machine.)
  const arrived = async (n: number) => {
    while (held.length < n) await new Promise((r) => setImmediate(r));
  };
  return { rpc, arrived, flush, close: () => {} };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

test('replies settle the requests they answer, in any order', async () => {
  const { rpc, arrived, flush, close } = channel();
  const replies = [1, 2, 3].map((x) => rpc.call({ op: 'double', x }));
  assert.equal(rpc.pending, 3);
  await arrived(3);
  flush();
  assert.deepEqual(await Promise.all(replies), [2, 4, 6]);
  assert.equal(rpc.pending, 0);
  close();
});

test('a forgotten request ignores its late reply; the others still settle', async () => {
  const { rpc, arrived, flush, close } = channel();
  const a = rpc.send({ op: 'double', x: 5 });
  const b = rpc.send({ op: 'double', x: 7 });
  assert.equal(rpc.forget(a.id), true);
  assert.equal(rpc.forget(a.id), false, 'forgetting twice finds nothing');
  await arrived(2);
  flush();
  assert.equal(await b.reply, 14);
  await tick();
  assert.equal(rpc.resolve(a.id, 99), false, 'no one waits for a forgotten id');
  close();
});

test('a failed channel rejects every waiting request; a permanent failure also every later one', async () => {
  const { rpc, close } = channel();
  const waiting = [rpc.call({ op: 'never', x: 1 }), rpc.call({ op: 'never', x: 2 })];
  rpc.fail(new Error('worker exited'));
  for (const w of waiting) await assert.rejects(w, /worker exited/);
  const next = rpc.call({ op: 'never', x: 3 });
  assert.equal(rpc.pending, 1, 'a transient failure leaves later requests to the next channel');
  rpc.fail(new Error('worker failed for good'), { permanent: true });
  await assert.rejects(next, /for good/);
  await assert.rejects(rpc.call({ op: 'double', x: 4 }), /for good/);
  assert.equal(rpc.pending, 0);
  close();
});

test('a request whose post throws rejects with that error instead of waiting', async () => {
  const rpc = new RpcClient<Req, number>(() => {
    throw new Error('channel closed');
  });
  await assert.rejects(rpc.call({ op: 'double', x: 1 }), /channel closed/);
  assert.equal(rpc.pending, 0);
});
