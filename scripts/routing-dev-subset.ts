// The routing study's dev subset: N pairs per dev/en-XX.tsv, evenly spaced through the file (the
// files are sorted by source string, so the first N would all start with "%"), among the pairs
// whose both sides fit the study's models (maxLength, with the language tag and end marker).
// Run: node --import tsx scripts/routing-dev-subset.ts TOKENIZER MAX_LENGTH N OUT_DIR DEV_FILE...
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '../src/tokenizer/index.ts';

const [tokenizerPath, maxLength, n, outDir, ...files] = process.argv.slice(2);
const tok = await Tokenizer.load(tokenizerPath);
fs.mkdirSync(outDir, { recursive: true });
for (const file of files) {
  const lang = path.basename(file, '.tsv').slice(3);
  const fits = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => {
      const [en, xx] = line.split('\t');
      return (
        xx !== undefined &&
        tok.encodeSource(en, lang).length <= Number(maxLength) &&
        tok.encodeSource(xx, 'en').length <= Number(maxLength)
      );
    });
  const stride = fits.length / Number(n);
  const chosen = Array.from({ length: Math.min(Number(n), fits.length) }, (_, i) => fits[Math.floor(i * stride)]);
  fs.writeFileSync(path.join(outDir, path.basename(file)), chosen.join('\n') + '\n');
  console.log(`${path.basename(file)}: ${chosen.length} of the ${fits.length} pairs that fit`);
}
