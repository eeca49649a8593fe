// Runs the CLI from source, as bin/taskmoe.js runs it from dist/.
import { main } from '../../src/cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`taskmoe: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
