import { KeyStore, keyDbPath } from '../src/server/front-door/key-store.ts';
import { Limiter } from '../src/server/front-door/limiter.ts';
import { tempDir } from '../test/helpers/engine.ts';
const admin = KeyStore.open(keyDbPath(tempDir('fd-p2-')));
const key = admin.add({ name: 'b', reqPerMinute: 1e9, charsPerDay: 1e9 }).key;
const lim = new Limiter(admin.db);
for (let r = 0; r < 3; r++) {
  let t0 = performance.now();
  for (let i = 0; i < 5000; i++) admin.get(key);
  const g = (performance.now() - t0) / 5;
  t0 = performance.now();
  for (let i = 0; i < 5000; i++) lim.admit('key:' + key, { reqPerMinute: 1e9, charsPerDay: 1e9 }, 40);
  console.log('get', g.toFixed(1), 'us; admit', ((performance.now() - t0) / 5).toFixed(1), 'us');
}
