// LibreTranslate's API as a fastify plugin: /translate (and /translate/:source/:target),
// /detect, /languages, /frontend/settings, /translate_file with /download_file/:name, /suggest;
// JSON, form-urlencoded and multipart bodies; CORS. Work goes to the TextService; this file
// knows HTTP only.
import * as path from 'node:path';
import cors from '@fastify/cors';
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InputError } from '../translator/index.ts';
import { FileStore } from './file-store.ts';
import { translateSchemas } from './libretranslate-schemas.ts';
import type { ServerSettings } from './settings.ts';
import { needsKeyStore } from './front-door/index.ts';
import type { RequestContext, TextService } from './text-service.ts';

export interface LibreTranslateOptions {
  settings: ServerSettings;
  /** The model's longest sequence, the bound of max_length. */
  maxLength: number;
  service: TextService;
  languageNames: Record<string, string>;
  /** Throws the error to answer when the server takes no work now (warming up, shutting down). */
  admit: () => void;
}

interface TranslateBody {
  q: string | string[];
  source?: string;
  target: string;
  format?: 'text' | 'html';
  alternatives?: number;
  beam_size?: number;
  max_length?: number;
}

interface UploadedFile {
  filename: string;
  data: Buffer;
}

const FILE_KINDS: Record<string, { kind: 'txt' | 'html' | 'po'; contentType: string }> = {
  '.txt': { kind: 'txt', contentType: 'text/plain; charset=utf-8' },
  '.html': { kind: 'html', contentType: 'text/html; charset=utf-8' },
  '.htm': { kind: 'html', contentType: 'text/html; charset=utf-8' },
  '.po': { kind: 'po', contentType: 'text/x-gettext-translation; charset=utf-8' },
};

/** Fields that are integers in JSON and arrive as strings in forms. */
const INTEGER_FIELDS = ['alternatives', 'beam_size', 'max_length'];

export async function libreTranslate(app: FastifyInstance, opts: LibreTranslateOptions): Promise<void> {
  const { settings, service } = opts;
  const origins =
    settings.corsOrigins.trim() === '*'
      ? '*'
      : settings.corsOrigins
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean);
  await app.register(cors, { origin: origins, methods: ['GET', 'POST', 'OPTIONS'] });
  await app.register(formbody);
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fileSize: settings.maxFileBytes, files: 1, fields: 16, fieldSize: settings.bodyLimitBytes },
    async onFile(part) {
      (part as unknown as { value: UploadedFile }).value = { filename: part.filename, data: await part.toBuffer() };
    },
  });
  // Form and multipart fields are strings: numbers become numbers before validation.
  app.addHook('preValidation', async (req) => {
    const type = req.headers['content-type'] ?? '';
    if (
      !/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type) ||
      typeof req.body !== 'object' ||
      req.body === null
    )
      return;
    const body = req.body as Record<string, unknown>;
    for (const f of INTEGER_FIELDS)
      if (typeof body[f] === 'string' && /^-?\d+$/.test(body[f] as string)) body[f] = Number(body[f]);
  });

  const files = new FileStore(settings.downloadTtlS * 1000, settings.downloadStoreBytes);
  app.addHook('onClose', async () => files.clear());
  const schemas = translateSchemas(settings, opts.maxLength);

  /** The request's deadline and a signal that aborts when the client goes away. */
  const contextOf = (reply: FastifyReply): { ctx: RequestContext; done: () => void } => {
    const disconnected = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) disconnected.abort();
    };
    reply.raw.on('close', onClose);
    return {
      ctx: { timeoutMs: settings.timeoutMs, signal: disconnected.signal, client: reply.request.ip },
      done: () => reply.raw.off('close', onClose),
    };
  };

  const translate = async (body: TranslateBody, reply: FastifyReply) => {
    opts.admit();
    const format = body.format ?? 'text';
    const alternatives = body.alternatives ?? 0;
    if (format === 'html' && alternatives > 0)
      throw new InputError('alternatives are not supported with format "html"');
    const texts = Array.isArray(body.q) ? body.q : [body.q];
    const { ctx, done } = contextOf(reply);
    try {
      const result = await service.translate(
        {
          texts,
          source: body.source ?? 'auto',
          target: body.target,
          format,
          alternatives,
          options: {
            beamSize: Math.max(body.beam_size ?? 1, alternatives + 1),
            nBest: alternatives + 1,
            maxLength: body.max_length,
          },
        },
        ctx,
      );
      const single = !Array.isArray(body.q);
      return {
        translatedText: single ? result.translated[0] : result.translated,
        ...(alternatives > 0 ? { alternatives: single ? result.alternatives[0] : result.alternatives } : {}),
        ...(result.detected ? { detectedLanguage: single ? result.detected[0] : result.detected } : {}),
      };
    } finally {
      done();
    }
  };

  app.post<{ Body: TranslateBody }>('/translate', { schema: schemas.translate }, (req, reply) =>
    translate(req.body, reply),
  );
  // The pair in the URL lets a load balancer hash on it, so each pair reaches the replicas that hold it warm.
  app.post<{ Body: Partial<TranslateBody>; Params: { source: string; target: string } }>(
    '/translate/:source/:target',
    { schema: schemas.translatePair },
    (req, reply) => {
      const { source, target } = req.params;
      if ((req.body.source ?? source) !== source || (req.body.target ?? target) !== target) {
        throw new InputError(
          `the body's source/target (${req.body.source}-${req.body.target}) disagree with the URL (${source}-${target})`,
        );
      }
      return translate({ ...req.body, source, target } as TranslateBody, reply);
    },
  );

  app.post<{ Body: { q: string } }>('/detect', { schema: schemas.detect }, async (req) => service.detect(req.body.q));

  app.get('/languages', { schema: schemas.languages }, async () =>
    service.languages.map((code) => ({
      code,
      name: opts.languageNames[code] ?? code,
      targets: service.targetsOf(code),
    })),
  );

  app.get('/frontend/settings', { schema: schemas.frontendSettings }, async () => ({
    // LibreTranslate's meaning: keys are in use (they lift limits) / every call needs one.
    apiKeys: needsKeyStore(settings),
    charLimit: settings.maxTextChars,
    filesTranslation: true,
    frontendTimeout: 500,
    keyRequired: settings.apiKeys,
    suggestions: false,
    supportedFilesFormat: Object.keys(FILE_KINDS),
    language: {
      source: { code: 'auto', name: 'Auto Detect' },
      target: {
        code: service.languages.find((l) => l !== 'en') ?? 'en',
        name: opts.languageNames[service.languages.find((l) => l !== 'en') ?? 'en'] ?? '',
      },
    },
  }));

  app.post<{ Body: { file: UploadedFile | string; source?: string; target: string } }>(
    '/translate_file',
    { schema: schemas.translateFile },
    async (req, reply) => {
      opts.admit();
      const file = req.body.file;
      if (typeof file !== 'object' || file === null || !Buffer.isBuffer(file.data))
        throw new InputError('"file" must be a file upload (multipart/form-data)');
      const ext = path.extname(file.filename ?? '').toLowerCase();
      const kind = FILE_KINDS[ext];
      if (kind === undefined)
        throw new InputError(
          `unsupported file type "${ext || file.filename}"; supported: ${Object.keys(FILE_KINDS).join(', ')}`,
        );
      let content: string;
      try {
        content = new TextDecoder('utf-8', { fatal: true }).decode(file.data);
      } catch {
        throw new InputError(`"${file.filename}" is not UTF-8 text`);
      }
      const { ctx, done } = contextOf(reply);
      let out: string;
      try {
        out = await service.translateFile(
          kind.kind,
          file.filename,
          content,
          req.body.source ?? 'auto',
          req.body.target,
          ctx,
        );
      } finally {
        done();
      }
      const base = path.basename(file.filename, path.extname(file.filename));
      const name = files.put(
        { filename: `${base}.${req.body.target}${ext}`, contentType: kind.contentType, data: Buffer.from(out, 'utf8') },
        kind.kind,
      );
      return { translatedFileUrl: `${req.protocol}://${req.host}/download_file/${name}` };
    },
  );

  app.get<{ Params: { name: string } }>(
    '/download_file/:name',
    { schema: schemas.downloadFile },
    async (req: FastifyRequest<{ Params: { name: string } }>, reply) => {
      const file = files.get(req.params.name);
      if (file === undefined)
        return reply.code(404).send({
          error: `no file ${req.params.name}: it expired (files are kept ${settings.downloadTtlS} s) or never existed`,
        });
      return reply
        .header('content-type', file.contentType)
        .header('content-disposition', `attachment; filename="${file.filename.replace(/["\\\r\n]/g, '_')}"`)
        .send(file.data);
    },
  );

  app.post('/suggest', { schema: schemas.suggest }, async (_req, reply) =>
    reply.code(403).send({ error: 'Suggestions are disabled on this server.' }),
  );
}
