// `taskmoe export --onnx`: a model (or the sub-network of one direction) as standard ONNX files
// that any ONNX runtime (Triton's onnxruntime backend, Python onnxruntime) can load, with its
// config, tokenizer and a README of the graphs' inputs and outputs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointReader } from '../models/checkpoint.ts';
import { type ModelConfig, pairKey } from '../models/config.ts';
import { Seq2Seq } from '../models/model.ts';
import type { Direction } from '../models/transformer.ts';
import { checkDirection } from '../translator/index.ts';
import { type OnnxGraphs, graphsOf } from './parts.ts';
import { sentenceRoutedDecoderLayers, takesTask } from './graphs.ts';

export const ONNX_FILES = {
  encoder: 'encoder.onnx',
  decoderStart: 'decoder-start.onnx',
  decoderStep: 'decoder-step.onnx',
} as const;

/** Protobuf's limit on one message: a larger graph would need ONNX external data, which this export does not write. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

export interface ExportResult {
  files: string[];
  config: ModelConfig;
}

/** Writes the graphs of the model in `modelDir` (the sub-network serving `dir` when given) to `outDir`. */
export async function exportOnnx(modelDir: string, outDir: string, dir?: Direction): Promise<ExportResult> {
  const reader = await CheckpointReader.open(modelDir);
  if (dir !== undefined) checkDirection(reader.config.languages, reader.config.pairs, dir);
  const model = dir === undefined ? await Seq2Seq.load(reader) : await Seq2Seq.loadSubnetwork(reader, dir);
  let graphs: OnnxGraphs;
  try {
    graphs = graphsOf(model);
  } finally {
    model.dispose();
  }
  fs.mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  for (const [part, file] of Object.entries(ONNX_FILES) as [keyof typeof ONNX_FILES, string][]) {
    const bytes = graphs[part];
    if (bytes.byteLength > PROTOBUF_LIMIT)
      throw new Error(
        `${file} would be ${bytes.byteLength} bytes, over protobuf's 2 GiB limit; export a sub-network (--source, --target) instead`,
      );
    fs.writeFileSync(path.join(outDir, file), bytes);
    files.push(file);
  }
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(graphs.config, null, 2) + '\n');
  // Every tokenizer file under the name config.json gives it (an imported model has several).
  const tokenizerFiles: [string, string][] = [[graphs.config.tokenizer, reader.tokenizerPath], ...reader.extraFiles];
  for (const [name, from] of tokenizerFiles) fs.copyFileSync(from, path.join(outDir, name));
  fs.writeFileSync(path.join(outDir, 'README.md'), readme(graphs.config, dir));
  files.push('config.json', ...tokenizerFiles.map(([name]) => name), 'README.md');
  return { files, config: graphs.config };
}

/** How source ids and the decoder's first tokens are formed, by the config's prompt. */
function prompting(cfg: ModelConfig): string {
  const start = cfg.specialIds === undefined ? 'BOS' : `id ${cfg.specialIds.decoderStart} (specialIds.decoderStart)`;
  switch (cfg.prompt ?? 'target-tag') {
    case 'target-tag':
      return `Source ids are the tokenizer's pieces of the text, with the target language tag first and EOS last (\`Tokenizer.encodeSource\`); decoding starts from ${start}.`;
    case 'language-tokens':
      return `Source ids are the source language's token (config.json's "languageTokens") followed by the pieces of the text and EOS; decoding starts from ${start}, and the target language's token is forced as the first output.`;
    case 'none':
      return `Source ids are the pieces of the text followed by EOS (one language pair per model); decoding starts from ${start}.`;
  }
}

function readme(cfg: ModelConfig, dir: Direction | undefined): string {
  const { dModel: d, numHeads: h, vocabSize: v, moe } = cfg;
  const dh = d / h;
  const routed = sentenceRoutedDecoderLayers(cfg);
  const layers = `i = 0..${cfg.decoderLayers - 1}`;
  const what = dir === undefined ? 'the full model' : `the sub-network serving ${pairKey(dir.source, dir.target)}`;
  return `# taskmoe model as ONNX (${what})

Three graphs (ONNX opset 17, float32, weights inside each file), exported by \`taskmoe export --onnx\`.
Shapes: B sentences (rows), S source tokens, C cached target positions; d = ${d}, H = ${h}, dh = ${dh},
V = ${v}, k = ${moe.topK}. int64 inputs are token ids, positions or task indices. Bias inputs are
additive attention masks: 0 where a row may attend, -1e9 elsewhere.

${prompting(cfg)} Config: config.json; tokenizer: ${[cfg.tokenizer, cfg.targetTokenizer, cfg.vocab, cfg.targetVocab].filter((f) => f !== undefined).join(', ')}.

## ${ONNX_FILES.encoder}
| input | type | shape | meaning |
|---|---|---|---|
| ids | int64 | [B, S] | source ids, padded with 0 |
| srcBias | float | [B, 1, 1, S] | 0 for a real source position, -1e9 for padding |
| valid | float | [B, S] | 1 for a real source position, 0 for padding |
${takesTask(cfg, 'encoder') ? `| encTask | int64 | [B] | index of the sentence's task (${cfg.routing.encoder}) in config.json's ${cfg.routing.encoder === 'target' ? '"languages"' : '"pairs"'} |\n` : ''}
Output: memory, float [B, S, d].

## ${ONNX_FILES.decoderStart}
| input | type | shape | meaning |
|---|---|---|---|
| memory | float | [B, S, d] | the encoder's output |
${cfg.routing.decoder === 'sentence' && routed.length > 0 ? '| valid | float | [B, S] | as for the encoder |\n' : ''}${takesTask(cfg, 'decoder') ? `| decTask | int64 | [B] | index of the sentence's task (${cfg.routing.decoder}) in config.json's ${cfg.routing.decoder === 'target' ? '"languages"' : '"pairs"'} |\n` : ''}
Outputs, for ${layers}: crossK.i, crossV.i, float [B, H, S, dh] (cross-attention keys and values)${routed.length > 0 ? `; for the sentence-routed layers i in {${routed.join(', ')}}: routeExperts.i int64 [B, k], routeGates.i float [B, k]` : ''}.

## ${ONNX_FILES.decoderStep}
One target token per row. Feed each step's present caches back as the next step's past caches (they
start as [B, H, 0, dh]).

| input | type | shape | meaning |
|---|---|---|---|
| tokens | int64 | [B] | each row's previous token (BOS first) |
| positions | int64 | [B] | each row's position (0 first) |
| selfBias | float | [B, 1, 1, C+1] | 0 for the row's own cache columns and the new one |
| srcBias | float | [B, 1, 1, S] | as for the encoder |
| topK | int64 | [1] | how many of each row's best tokens topLogProbs/topTokens return (1 for greedy, 2*beam for beam search) |
| pastK.i, pastV.i | float | [B, H, C, dh] | the self-attention cache, ${layers} |
| crossK.i, crossV.i | float | [B, H, S, dh] | from ${ONNX_FILES.decoderStart} |
${routed.map((i) => `| routeExperts.${i}, routeGates.${i} | int64, float | [B, k] | from ${ONNX_FILES.decoderStart} |\n`).join('')}
| output | type | shape | meaning |
|---|---|---|---|
| logits | float | [B, V] | next-token logits |
| logProbs | float | [B, V] | their log-softmax |
| best, bestLogProb | int64, float | [B] | greedy: the argmax token and its log-probability |
| topLogProbs, topTokens | float, int64 | [B, topK] | each row's topK best tokens, best first |
| presentK.i, presentV.i | float | [B, H, C+1, dh] | the cache for the next step |
`;
}
