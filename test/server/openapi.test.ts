// The OpenAPI document: valid OpenAPI 3 (checked by @seriousme/openapi-schema-validator) and a
// description of every route the server registers, with its error answers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import { resolveSettings } from '../../src/server/settings.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { randomCheckpoint, tempDir, tinyConfig } from '../helpers/engine.ts';
import { expectServerBackend } from '../helpers/server.ts';

// The checkpoint below is written by tensor code on this thread.
before(useTestBackend);

describe('the OpenAPI document', () => {
  let server: TaskmoeServer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- an OpenAPI document, walked as plain JSON
  let spec: any;
  before(async () => {
    const modelDir = await randomCheckpoint(tinyConfig('token', 'target'), 11);
    server = await createServer({
      ...resolveSettings({}, {}),
      modelDir,
      dataDir: tempDir(),
      workers: 1,
      warm: 'none',
      apiKeys: true,
    });
    await expectServerBackend(server);
    const res = await server.app.inject('/openapi.json');
    assert.equal(res.statusCode, 200);
    spec = res.json();
  });
  after(() => server.shutdown());

  test('validates as OpenAPI 3', async () => {
    assert.match(spec.openapi, /^3\./);
    const result = await new Validator().validate(spec);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  test('is served at /spec as well, and Swagger UI at /docs', async () => {
    assert.deepEqual((await server.app.inject('/spec')).json(), spec);
    const docs = await server.app.inject('/docs/');
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger-ui/i);
    assert.match(docs.headers['content-security-policy'] as string, /default-src 'self'/);
    assert.equal((await server.app.inject('/docs/json')).statusCode, 200);
  });

  test('lists every route the server registers, and hides only static files and Swagger UI', () => {
    const routes = server.app.registeredRoutes.filter((r) => r.method !== 'HEAD');
    const inSpec = new Set(
      Object.entries(spec.paths).flatMap(([p, ops]) =>
        Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`),
      ),
    );
    const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');
    const missing = routes.filter((r) => !r.hidden && !inSpec.has(`${r.method} ${openApiPath(r.url)}`));
    assert.deepEqual(missing, [], 'routes missing from the spec');
    // Left out: static files, Swagger UI's pages, and the CORS preflight (OPTIONS *).
    const hidden = routes.filter((r) => r.hidden);
    const fine = (r: { method: string; url: string }) =>
      r.url.startsWith('/static/') || r.url.startsWith('/docs') || (r.method === 'OPTIONS' && r.url === '*');
    assert.deepEqual(
      hidden.filter((r) => !fine(r)),
      [],
    );
    for (const must of ['POST /translate', 'GET /languages', 'GET /', 'GET /openapi.json', 'GET /spec', 'GET /metrics'])
      assert.ok(inSpec.has(must), must);
    assert.ok(routes.length >= 12, `${routes.length} routes`);
  });

  test("documents the translation routes' fields, answers, error statuses and an example", () => {
    const op = spec.paths['/translate'].post;
    assert.ok(op.summary);
    const body = op.requestBody.content['application/json'];
    for (const field of ['q', 'source', 'target', 'format', 'alternatives', 'api_key'])
      assert.ok(body.schema.properties[field], field);
    assert.ok(body.example ?? body.examples, 'an example body');
    for (const status of ['200', '400', '403', '413', '429', '503', '504'])
      assert.ok(op.responses[status], `status ${status}`);
    assert.ok(op.responses['429'].headers['retry-after']);
    assert.ok(op.responses['200'].content['application/json'].schema.properties.translatedText);
    for (const [p, ops] of Object.entries(spec.paths)) {
      for (const [m, o] of Object.entries(ops as Record<string, { summary?: string }>))
        assert.ok(o.summary, `${m} ${p} has a summary`);
    }
  });
});
