import assert from 'node:assert/strict';
import { test } from 'node:test';
import { caseArgs, formatSettings } from '../../src/bench/server-settings.ts';
import type { LoadResult } from '../../src/bench/server.ts';

test('a settings case is its serve flags; "default" and an empty case are none', () => {
  assert.deepEqual(caseArgs('default'), []);
  assert.deepEqual(caseArgs('  '), []);
  assert.deepEqual(caseArgs(' --workers 1  --intra-op-threads 2 '), ['--workers', '1', '--intra-op-threads', '2']);
});

test('the settings table shows each case against the first, with its single-request latency', () => {
  const load = (sentencesPerSecond: number, p50Ms: number): LoadResult => ({
    label: '',
    rounds: [sentencesPerSecond],
    requests: 1,
    sentencesPerSecond,
    p50Ms,
    p99Ms: p50Ms,
    errors: {},
    meanBatchSentences: 1,
  });
  const text = formatSettings(
    {
      cases: [
        { flags: 'default', saturation: load(200, 300), single: load(15, 60), ratio: 1 },
        { flags: '--max-delay-ms 25', saturation: load(230, 280), single: load(12, 80), ratio: 1.15 },
      ],
      workers: { workers: 2, single: load(180, 350), many: load(270, 500), speedup: 1.5 },
    },
    64,
  );
  assert.match(text, /\| defaults \| 200\.0 \| 200\.0 \| 1\.00x \| 300 \/ 300 \| 1\.0 \| 60\.0 \(15\.0\) \|/);
  assert.match(text, /\| --max-delay-ms 25 \| 230\.0 \| 230\.0 \| 1\.15x \|/);
  assert.match(text, /2 workers \/ 1 worker: 1\.50x/);
});
