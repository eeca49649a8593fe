// The native TensorFlow path (tfjs-node, which tfjs-node-gpu shares) must translate exactly as
// wasm does: the demo model's greedy and beam outputs, alternatives included, compared text for text.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { TEST_BACKEND } from '../helpers/backend.ts';
import { runCli } from '../helpers/cli.ts';

const SENTENCES = [
  'Could not open file',
  'Save the document as a new file',
  'The file %s already exists.',
  'Quit',
  'Unknown option: --verbose',
];
const RUNS = [
  ['--source', 'en', '--target', 'ru'],
  ['--source', 'en', '--target', 'de', '--beam', '4', '--n-best', '2'],
];

const tfjsNodeLoads =
  spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { stdio: 'ignore' }).status === 0;

test(
  'tfjs-node translates the demo model exactly as wasm does (greedy, beam, alternatives)',
  {
    // `npm run test:node` (CI, after scripts/build-tfjs-node.sh) must run it; a plain `npm test` on a machine without the build skips it.
    skip:
      TEST_BACKEND !== 'node' && !tfjsNodeLoads ? 'tfjs-node is not built here (scripts/build-tfjs-node.sh)' : false,
  },
  async () => {
    for (const args of RUNS) {
      const input = SENTENCES.join('\n') + '\n';
      const wasm = await runCli(['translate', ...args], input, 'wasm');
      const node = await runCli(['translate', ...args], input, 'node');
      assert.equal(wasm.code, 0, wasm.stderr);
      assert.equal(node.code, 0, node.stderr);
      assert.match(node.stderr, /tensorflow/i, 'the node run says it uses TensorFlow');
      assert.ok(wasm.stdout.trim().split('\n').length >= SENTENCES.length, wasm.stdout);
      assert.equal(node.stdout, wasm.stdout, `taskmoe translate ${args.join(' ')}`);
    }
  },
);
