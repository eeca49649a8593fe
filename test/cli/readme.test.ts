// The README documents every server setting as the server defines it (flag, variable, default, meaning).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { SETTINGS, settingDefault } from '../../src/server/settings.ts';

test("the README's settings table lists every setting with its variable, default and meaning", () => {
  const readme = fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  for (const s of SETTINGS) {
    const row = `| \`--${s.flag}\` | \`${s.env}\` | ${settingDefault(s)} | ${s.help.replace(/\|/g, '\\|')} |`;
    assert.ok(
      readme.includes(row),
      `README lacks or misstates --${s.flag}; regenerate with node --import tsx scripts/settings-table.ts`,
    );
  }
});
