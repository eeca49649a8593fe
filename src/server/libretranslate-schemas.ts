// JSON schemas of LibreTranslate's routes: bodies, answers and errors, so fastify validates and
// serializes them and @fastify/swagger can document them. Unknown body fields are allowed and
// ignored, as LibreTranslate ignores them (clients send e.g. `apiKey`).
import { STORED_NAME } from './file-store.ts';
import type { ServerSettings } from './settings.ts';

export const errorSchema = { type: 'object', required: ['error'], properties: { error: { type: 'string' } } } as const;

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, errorSchema]));

const detection = {
  type: 'object',
  required: ['confidence', 'language'],
  properties: { confidence: { type: 'number', description: '0–100' }, language: { type: 'string' } },
} as const;

const language = {
  type: 'object',
  required: ['code', 'name', 'targets'],
  properties: {
    code: { type: 'string' },
    name: { type: 'string' },
    targets: { type: 'array', items: { type: 'string' } },
  },
} as const;

export function translateSchemas(s: ServerSettings, maxLength: number) {
  const text = { type: 'string', minLength: 1, maxLength: s.maxTextChars };
  const body = {
    type: 'object',
    required: ['q', 'target'],
    properties: {
      q: {
        anyOf: [text, { type: 'array', minItems: 1, maxItems: s.maxTexts, items: text }],
        description: 'a text, or an array of texts',
      },
      source: { type: 'string', minLength: 1, description: 'language code, or "auto" to detect it (the default)' },
      target: { type: 'string', minLength: 1 },
      format: { type: 'string', enum: ['text', 'html'] },
      alternatives: { type: 'integer', minimum: 0, maximum: s.maxAlternatives },
      api_key: {
        type: 'string',
        description:
          'an API key: required when the server runs with --api-keys; a key lifts or sets the client\'s quotas (docs/front-door.md); "" counts as none',
      },
      beam_size: { type: 'integer', minimum: 1, maximum: s.maxBeam },
      max_length: { type: 'integer', minimum: 1, maximum: maxLength },
    },
  } as const;
  const response = {
    200: {
      type: 'object',
      required: ['translatedText'],
      properties: {
        translatedText: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
        alternatives: {
          anyOf: [
            { type: 'array', items: { type: 'string' } },
            { type: 'array', items: { type: 'array', items: { type: 'string' } } },
          ],
        },
        detectedLanguage: { anyOf: [detection, { type: 'array', items: detection }] },
      },
    },
    ...errors(400, 413, 429, 499, 500, 503, 504),
  };
  return {
    translate: { consumes: CONSUMES, body, response },
    translatePair: {
      consumes: CONSUMES,
      body: { ...body, required: ['q'] },
      params: {
        type: 'object',
        required: ['source', 'target'],
        properties: { source: { type: 'string' }, target: { type: 'string' } },
      },
      response,
    },
    detect: {
      consumes: CONSUMES,
      body: { type: 'object', required: ['q'], properties: { q: text, api_key: { type: 'string' } } },
      response: { 200: { type: 'array', items: detection }, ...errors(400, 413, 500) },
    },
    languages: { response: { 200: { type: 'array', items: language } } },
    frontendSettings: {
      response: {
        200: {
          type: 'object',
          properties: {
            apiKeys: { type: 'boolean' },
            charLimit: { type: 'integer' },
            filesTranslation: { type: 'boolean' },
            frontendTimeout: { type: 'integer' },
            keyRequired: { type: 'boolean' },
            suggestions: { type: 'boolean' },
            supportedFilesFormat: { type: 'array', items: { type: 'string' } },
            language: {
              type: 'object',
              properties: Object.fromEntries(
                ['source', 'target'].map((k) => [
                  k,
                  { type: 'object', properties: { code: { type: 'string' }, name: { type: 'string' } } },
                ]),
              ),
            },
          },
        },
      },
    },
    translateFile: {
      consumes: ['multipart/form-data'],
      body: {
        type: 'object',
        required: ['file', 'target'],
        properties: {
          file: { description: `the file to translate: .txt, .html or .po, at most ${s.maxFileBytes} bytes` },
          source: { type: 'string', minLength: 1 },
          target: { type: 'string', minLength: 1 },
          api_key: { type: 'string' },
        },
      },
      response: {
        200: { type: 'object', required: ['translatedFileUrl'], properties: { translatedFileUrl: { type: 'string' } } },
        ...errors(400, 413, 429, 500, 503, 504),
      },
    },
    downloadFile: {
      params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: STORED_NAME } } },
      response: { 200: { description: 'the translated file', type: 'string' }, ...errors(400, 404) },
    },
    suggest: {
      consumes: CONSUMES,
      body: {
        type: 'object',
        properties: {
          q: { type: 'string' },
          s: { type: 'string' },
          source: { type: 'string' },
          target: { type: 'string' },
          api_key: { type: 'string' },
        },
      },
      response: errors(403),
    },
  };
}

const CONSUMES = ['application/json', 'application/x-www-form-urlencoded', 'multipart/form-data'];
