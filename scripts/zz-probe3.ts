import { createServer } from '../src/server/app.ts';
import { KeyStore, keyDbPath } from '../src/server/front-door/key-store.ts';
import { resolveSettings } from '../src/server/settings.ts';
import { tempDir } from '../test/helpers/engine.ts';
const dataDir = tempDir('fd-probe-');
const which = process.argv[2];
const base = { ...resolveSettings({}, {}), workers: 1, warm: 'none', dataDir };
const s = await createServer(which === 'on' ? { ...base, apiKeys: true } : base);
await s.ready;
const admin = KeyStore.open(keyDbPath(dataDir));
const key0 = admin.add({ name: 'c', reqPerMinute: 0, charsPerDay: 0 }).key;
for (let r = 0; r < 4; r++) {
  const t0 = performance.now();
  for (let i = 0; i < 3000; i++) {
    const x = await s.app.inject({ method: 'POST', url: '/detect', payload: { q: 'Could not open the file', ...(which === 'on' ? { api_key: key0 } : {}) } });
    if (x.statusCode !== 200) throw new Error(x.body);
  }
  console.log(which, ((performance.now() - t0)).toFixed(0), 'us/request');
}
await s.shutdown();
