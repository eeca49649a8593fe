// One of several processes admitting requests for one client on a shared key database:
// `limiter-client.ts DB LIMIT TRIES` prints how many it was admitted.
import { KeyStore } from '../../src/server/front-door/key-store.ts';
import { Limiter } from '../../src/server/front-door/limiter.ts';

const [file, limit, tries] = process.argv.slice(2);
const store = KeyStore.open(file);
const limiter = new Limiter(store.db);
let admitted = 0;
for (let i = 0; i < Number(tries); i++) {
  if (limiter.admit('key:shared', { reqPerMinute: Number(limit), charsPerDay: 0 }, 1).ok) admitted++;
}
limiter.close();
store.close();
process.stdout.write(String(admitted));
