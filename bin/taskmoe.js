#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm ci` (the `prepare` script runs tsc).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`taskmoe: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
