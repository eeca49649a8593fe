#!/usr/bin/env python3
"""The Transformers side of scripts/hf-throughput.ts (which runs both and prints them side by side).

  hf-bench.py make DIR          a random OPUS-MT-shaped Marian model (512/2048/8 heads/6+6, vocabulary 58101)
  hf-bench.py run DIR SOURCES.json --batch B --tokens N --threads T --rounds R
                                greedy generate of exactly N tokens for each batch of B sources; prints JSON
"""
import argparse
import json
import os
import shutil
import sys
import time

import torch

VOCAB = 58101


def make(out, fixture):
    from transformers import MarianConfig, MarianMTModel
    torch.manual_seed(0)
    cfg = MarianConfig(vocab_size=VOCAB, decoder_vocab_size=VOCAB, d_model=512, encoder_layers=6, decoder_layers=6,
                       encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                       activation_function='swish', max_position_embeddings=512, pad_token_id=VOCAB - 1, eos_token_id=0,
                       decoder_start_token_id=VOCAB - 1, scale_embedding=True, share_encoder_decoder_embeddings=True,
                       bad_words_ids=[[VOCAB - 1]])
    model = MarianMTModel(cfg).eval()
    model.save_pretrained(out, safe_serialization=True)
    # The fixture's SentencePiece models, and a vocabulary padded with made-up pieces to OPUS-MT's size.
    for f in ('source.spm', 'target.spm', 'tokenizer_config.json'):
        shutil.copy(os.path.join(fixture, f), os.path.join(out, f))
    with open(os.path.join(fixture, 'vocab.json')) as f:
        vocab = json.load(f)
    del vocab['<pad>']
    for i in range(len(vocab), VOCAB - 1):
        vocab[f'<made-up-{i}>'] = i
    vocab['<pad>'] = VOCAB - 1
    with open(os.path.join(out, 'vocab.json'), 'w') as f:
        json.dump(vocab, f)


def run(d, sources_file, batch, tokens, threads, rounds):
    from transformers import MarianMTModel
    torch.set_num_threads(threads)
    model = MarianMTModel.from_pretrained(d).eval()
    with open(sources_file) as f:
        sources = json.load(f)
    pad = model.config.pad_token_id
    times = []
    with torch.inference_mode():
        for r in range(rounds + 1):  # the first round warms up
            started = time.perf_counter()
            for s in range(0, len(sources), batch):
                group = sources[s:s + batch]
                width = max(len(x) for x in group)
                ids = torch.tensor([x + [pad] * (width - len(x)) for x in group])
                mask = (ids != pad).long()
                out = model.generate(ids, attention_mask=mask, num_beams=1, do_sample=False, max_new_tokens=tokens,
                                     min_new_tokens=tokens)
                assert out.shape[1] == tokens + 1, out.shape
            if r > 0:
                times.append(time.perf_counter() - started)
    generated = len(sources) * tokens
    print(json.dumps({'batch': batch, 'threads': threads, 'seconds': times, 'tokens': generated,
                      'torch': torch.__version__}))


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('cmd', choices=['make', 'run'])
    p.add_argument('dir')
    p.add_argument('sources', nargs='?')
    p.add_argument('--fixture', default=os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'hf', 'marian', 'model'))
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--tokens', type=int, default=20)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--rounds', type=int, default=3)
    a = p.parse_args()
    if a.cmd == 'make':
        make(a.dir, a.fixture)
    else:
        run(a.dir, a.sources, a.batch, a.tokens, a.threads, a.rounds)
    sys.exit(0)
