// TensorFlow's native backend (tfjs-node, built by scripts/build-tfjs-node.sh) against wasm: the
// demo model must translate alike on both. Skipped where tfjs-node is not built.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.ts';

const loads = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { stdio: 'ignore' }).status === 0;
const skip = loads ? false : '@tensorflow/tfjs-node is not built here (scripts/build-tfjs-node.sh)';

const SENTENCES = [
  'Save changes before closing?',
  'Could not open file "%s".',
  'The document has been modified.',
  'Permission denied',
  'Select All',
];

const translate = (backend: string, args: string[]) =>
  runCli(['translate', ...args], SENTENCES.join('\n') + '\n', backend);

test(
  'TASKMOE_BACKEND=node loads tfjs-node, and the demo model translates as on wasm (greedy and beam)',
  { skip },
  async () => {
    for (const args of [
      ['--source', 'en', '--target', 'de'],
      ['--source', 'en', '--target', 'fr', '--beam', '4'],
    ]) {
      const native = await translate('node', args);
      const wasm = await translate('wasm', args);
      assert.equal(native.code, 0, native.stderr);
      assert.match(native.stderr, /tfjs backend tensorflow \(@tensorflow\/tfjs-node\)/);
      assert.equal(native.stdout.trim().split('\n').length, SENTENCES.length);
      assert.equal(native.stdout, wasm.stdout);
    }
  },
);
