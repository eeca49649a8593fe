// Pre-LN Transformer encoder-decoder with shared, tied embeddings and MoE FFNs. The encoder, the
// decoder and the embeddings are separate objects so that a server can cache and share them apart
// (one encoder for every pair, one extracted decoder per target language).
// The parts live in embeddings.ts, stack.ts (the shared stack), encoder.ts and decoder.ts.
export * from './stack.ts';
export * from './encoder.ts';
export * from './decoder.ts';
