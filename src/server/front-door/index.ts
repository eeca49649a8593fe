// The server's front door: the playground at /, the OpenAPI document and Swagger UI, and API keys
// with per-client quotas on the translation routes. createServer calls registerFrontDoor before it
// declares its routes, so the spec sees every route and the guard reaches the translation routes.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { startWorker } from '../../util/worker-thread.ts';
import type { ServerSettings } from '../settings.ts';
import { GUARDED_ROUTES, createDoor } from './access.ts';
import { KeyStore, keyDbPath } from './key-store.ts';
import { registerDocRoutes, registerOpenApi } from './openapi.ts';
import { registerPlayground } from './playground.ts';

export interface FrontDoor {
  /** /frontend/settings: clients must send an api_key. */
  keyRequired: boolean;
  /** Open when keys or quotas are on. */
  store?: KeyStore;
}

const PRUNE_EVERY_MS = 60_000;
const CHECKPOINT_EVERY_MS = 1000;

export interface RegisteredRoute {
  method: string;
  url: string;
  /** Left out of the OpenAPI document (static files, Swagger UI's own pages). */
  hidden: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route, as declared: what the OpenAPI document must cover. */
    registeredRoutes: RegisteredRoute[];
  }
}

/** Quotas or keys need the key database; without them nothing is opened or created. */
export function needsKeyStore(s: ServerSettings): boolean {
  return s.apiKeys || s.reqPerMinute > 0 || s.charsPerDay > 0;
}

export async function registerFrontDoor(app: FastifyInstance, settings: ServerSettings): Promise<FrontDoor> {
  // Opened first: a database that cannot be opened stops the start-up with its path in the message.
  const store = needsKeyStore(settings) ? KeyStore.open(keyDbPath(settings.dataDir)) : undefined;
  const routes: RegisteredRoute[] = [];
  app.decorate('registeredRoutes', routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat())
      routes.push({ method, url: route.url, hidden: (route.schema as { hide?: boolean } | undefined)?.hide === true });
  });
  await registerOpenApi(app, packageVersion());
  if (store !== undefined) {
    const door = createDoor(store, settings);
    app.addHook('onRoute', (route) => {
      if (!GUARDED_ROUTES.has(route.url)) return;
      const existing =
        route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler];
      route.preHandler = [door.guard, ...existing];
    });
    const prune = setInterval(() => door.limiter.pruneEnded(), PRUNE_EVERY_MS).unref();
    // WAL checkpoints (and their fsyncs) off the event loop: see checkpointer.ts. Should the worker
    // fail, SQLite's own checkpoints come back so that the WAL cannot grow without end.
    store.db.pragma('wal_autocheckpoint = 0');
    const checkpointer = startWorker(import.meta.url, 'checkpointer', {
      file: store.path,
      everyMs: CHECKPOINT_EVERY_MS,
    });
    checkpointer.on('error', () => store.db.pragma('wal_autocheckpoint = 1000'));
    let checkpointing = true;
    checkpointer.on('exit', () => (checkpointing = false));
    checkpointer.unref();
    app.addHook('onClose', async () => {
      clearInterval(prune);
      if (checkpointing) {
        const exited = once(checkpointer, 'exit');
        // Unref'd so that it never holds the process open; while we wait for its exit it must, or
        // a process with nothing else to do ends with this wait unsettled.
        checkpointer.ref();
        checkpointer.postMessage('close');
        await exited;
      }
      try {
        door.limiter.close();
      } finally {
        store.close();
      }
    });
  }
  if (!settings.disableWebUi) await registerPlayground(app);
  await registerDocRoutes(app);
  return { keyRequired: settings.apiKeys, store };
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../../package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
