import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type CpuProfile, functionTimes, perRequestUs, profileDifference } from '../../src/bench/cpu-profile.ts';

const frame = (functionName: string, url = 'file:///x/src/a.ts', lineNumber = 0, columnNumber = 0) => ({
  functionName,
  url,
  lineNumber,
  columnNumber,
});

// root -> outer -> inner -> outer (recursion); root -> (idle). Samples: outer, inner, inner-outer, idle.
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)', '', -1, -1), children: [2, 5] },
    { id: 2, callFrame: frame('outer', 'file:///x/src/a.ts', 0, 10), children: [3] },
    { id: 3, callFrame: frame('inner', 'file:///x/node_modules/m/b.js', 4, 2), children: [4] },
    { id: 4, callFrame: frame('outer', 'file:///x/src/a.ts', 0, 10) },
    { id: 5, callFrame: frame('(idle)', '', -1, -1) },
  ],
  startTime: 0,
  endTime: 10_000,
  samples: [2, 3, 4, 5],
  // Each sample's time is the delta after it: 1 ms, 2 ms, 3 ms, 4 ms.
  timeDeltas: [0, 1000, 2000, 3000, 4000],
};

test('functionTimes: self and total per function, recursion counted once a sample', () => {
  const t = new Map(functionTimes(profile).map((f) => [f.fn, f]));
  assert.deepEqual(t.get('outer src/a.ts:1:11'), { fn: 'outer src/a.ts:1:11', selfMs: 1 + 3, totalMs: 1 + 2 + 3 });
  assert.deepEqual(t.get('inner node_modules/m/b.js:5:3'), {
    fn: 'inner node_modules/m/b.js:5:3',
    selfMs: 2,
    totalMs: 2 + 3,
  });
  assert.equal(t.get('(root) :0:0')?.totalMs, 1 + 2 + 3 + 4);
  assert.equal(t.get('(idle) :0:0')?.selfMs, 4);
});

test('perRequestUs and profileDifference: µs per request, largest difference first', () => {
  const a = perRequestUs([profile], 10);
  assert.equal(a.get('outer src/a.ts:1:11')?.selfUs, 400);
  const b = perRequestUs([profile, profile], 10);
  const report = profileDifference(a, b, 2);
  const self = report.slice(0, report.indexOf('total time:'));
  // Everything doubles: (idle) and outer (400 -> 800 µs a request) differ most, inner (200 -> 400) is left out.
  assert.match(self, /\n\s+400\.0\s+400\.0\s+800\.0 {2}\(idle\) :0:0\n/);
  assert.match(self, /\n\s+400\.0\s+400\.0\s+800\.0 {2}outer src\/a\.ts:1:11\n/);
  assert.doesNotMatch(self, /inner/);
});
