// The TextService over a stand-in batcher that writes down what each hop was asked: pivoted pairs
// decode greedily to English, then give the second hop's hypotheses as alternatives.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { Direction } from '../../src/models/transformer.ts';
import { type SubmitSentences, TextService } from '../../src/server/text-service.ts';
import { DEFAULT_MODEL_DIR, type TranslateOptions } from '../../src/translator/index.ts';
import { ServedModel } from '../../src/translator/served-model.ts';

let served: ServedModel;
before(async () => {
  served = await ServedModel.open(DEFAULT_MODEL_DIR);
});

/** A batcher that answers `target:sentence`, and `target~k:sentence` as the k-th alternative. */
function standIn(): {
  submit: SubmitSentences;
  calls: Array<{ pair: string; sentences: string[]; options: TranslateOptions }>;
} {
  const calls: Array<{ pair: string; sentences: string[]; options: TranslateOptions }> = [];
  const submit: SubmitSentences = async (dir: Direction, ids, options) => {
    const tokenizer = served.tokenizerFor(dir);
    const sentences = ids.map((s) => tokenizer.decode(s).replace(/^<2\w+> /, ''));
    calls.push({ pair: `${dir.source}-${dir.target}`, sentences, options });
    return sentences.map((s) => ({
      text: `${dir.target}:${s}`,
      alternatives: Array.from({ length: (options.nBest ?? 1) - 1 }, (_, k) => `${dir.target}~${k + 1}:${s}`),
      generatedTokens: 1,
    }));
  };
  return { submit, calls };
}
const ctx = () => ({ timeoutMs: 60_000, signal: new AbortController().signal, client: 'test' });

test('a pivoted pair answers alternatives: the second hop’s hypotheses for the first hop’s best English', async () => {
  const { submit, calls } = standIn();
  const service = new TextService(served, undefined, submit);
  const result = await service.translate(
    {
      texts: ['Die Datei wurde gespeichert. Hallo Welt.', 'Beenden'],
      source: 'de',
      target: 'fr',
      format: 'text',
      alternatives: 2,
      options: { beamSize: 3, nBest: 3 },
    },
    ctx(),
  );
  assert.deepEqual(result.translated, ['fr:en:Die Datei wurde gespeichert. fr:en:Hallo Welt.', 'fr:en:Beenden']);
  assert.deepEqual(result.alternatives, [
    [
      'fr~1:en:Die Datei wurde gespeichert. fr~1:en:Hallo Welt.',
      'fr~2:en:Die Datei wurde gespeichert. fr~2:en:Hallo Welt.',
    ],
    ['fr~1:en:Beenden', 'fr~2:en:Beenden'],
  ]);
  // Two decodes in all: the first hop greedy, the second with the request's beam.
  assert.deepEqual(
    calls.map((c) => [c.pair, c.options]),
    [
      ['de-en', {}],
      ['en-fr', { beamSize: 3, nBest: 3 }],
    ],
  );
  assert.deepEqual(calls[0].sentences, ['Die Datei wurde gespeichert.', 'Hallo Welt.', 'Beenden']);
});

test('a direct pair still answers its own hypotheses; none asked, none given', async () => {
  const { submit, calls } = standIn();
  const service = new TextService(served, undefined, submit);
  const job = { texts: ['Save as'], source: 'en', target: 'de', format: 'text' as const };
  const direct = await service.translate({ ...job, alternatives: 1, options: { beamSize: 2, nBest: 2 } }, ctx());
  assert.deepEqual(direct.alternatives, [['de~1:Save as']]);
  const none = await service.translate({ ...job, target: 'fr', source: 'de', alternatives: 0, options: {} }, ctx());
  assert.deepEqual(none.alternatives, [[]]);
  assert.equal(calls.length, 3);
});
