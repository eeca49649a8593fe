// Prints the README's settings table from the server's own settings list (src/server/settings.ts),
// so the README says what --help says: node --import tsx scripts/settings-table.ts
import { SETTINGS, settingDefault } from '../src/server/settings.ts';

console.log('| flag | environment | default | meaning |');
console.log('|---|---|---|---|');
for (const s of SETTINGS)
  console.log(`| \`--${s.flag}\` | \`${s.env}\` | ${settingDefault(s)} | ${s.help.replace(/\|/g, '\\|')} |`);
