#!/usr/bin/env python3
"""Builds tiny random Hugging Face translation models (Marian, M2M-100, NLLB-MoE) with real
SentencePiece models, saves them under test/fixtures/hf/<name>/model, and records in
test/fixtures/hf/<name>/reference.json what Transformers computes for a dozen inputs: source token
ids, logits of a teacher-forced prefix, and greedy and beam-4 `generate` outputs. test/models/hf-import.test.ts
imports each model and checks taskmoe against these records; CI needs no Python.

  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install --retries 0 torch transformers safetensors sentencepiece
  /tmp/venv/bin/python scripts/hf-fixtures.py            # rewrites test/fixtures/hf

Fixed seeds; the models are a few layers of width 32 with vocabularies of a few hundred pieces.
"""
import json
import os
import shutil
import sys
import tempfile

import sentencepiece as spm
import torch
import transformers
from transformers import (M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer, MarianConfig,
                          MarianMTModel, MarianTokenizer, NllbMoeConfig, NllbMoeForConditionalGeneration)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'hf')
DEV = '/work/shared/data/gettext-mt/dev/en-de.tsv'
MAX_NEW = 16
TINY = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0)


def dev_pairs(n=300):
    with open(DEV, encoding='utf-8') as f:
        rows = [line.rstrip('\n').split('\t') for line in f]
    return [r for r in rows if len(r) == 2][:n]


def train_spm(sentences, prefix, vocab_size, **extra):
    path = prefix + '.txt'
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(sentences) + '\n')
    spm.SentencePieceTrainer.train(input=path, model_prefix=prefix, vocab_size=vocab_size, model_type='unigram',
                                   character_coverage=1.0, seed_sentencepiece_size=10000, num_threads=1,
                                   minloglevel=2, normalization_rule_name='identity', **extra)
    return prefix + '.model'


def randomize(model, seed, std):
    """Peaky random weights (std well above the 0.02 init) so that greedy and beam choices are clear."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'embed_positions' in name:
                continue
            if 'layer_norm' in name or 'layernorm' in name:
                p.copy_((1.0 if name.endswith('weight') else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith('final_logits_bias'):
                b.copy_(0.05 * torch.randn(b.shape, generator=g))


def references(model, sources, decoder_prefix, bad_words=None, forced_bos=None):
    """Logits of a teacher-forced decoder prefix for the first 4 inputs; greedy and beam-4 outputs for all."""
    model.eval()
    model.generation_config.forced_eos_token_id = None  # Marian's default; the length limit then ends a hypothesis as in taskmoe
    logits = []
    with torch.no_grad():
        for src in sources[:4]:
            dec = decoder_prefix + [5 + (i * 7) % 50 for i in range(6)]
            out = model(input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([dec]))
            logits.append({'decoder': dec, 'logits': [[round(float(v), 6) for v in row] for row in out.logits[0]]})
        common = dict(max_new_tokens=MAX_NEW, do_sample=False, bad_words_ids=bad_words, forced_bos_token_id=forced_bos)
        greedy, beam = [], []
        for src in sources:
            ids = torch.tensor([src])
            greedy.append(model.generate(ids, num_beams=1, **common)[0].tolist())
            beam.append(model.generate(ids, num_beams=4, length_penalty=0.0, early_stopping=True, **common)[0].tolist())
    return logits, greedy, beam


def fixed_nllb_moe_forward(self, hidden_states, padding_mask=None):
    """NllbMoeSparseMLP.forward as in transformers 4.x: router_probs are each token's combine weights.
    transformers 5.x passes the one-hot top-1 mask where NllbMoeExperts expects expert indices, so its
    sparse layers mix the wrong experts; the reference uses this corrected forward instead."""
    b, t, d = hidden_states.shape
    h = hidden_states.reshape(-1, d)
    _, router_probs, _ = self.router(h, padding_mask)
    out = torch.zeros_like(h)
    for e in range(self.num_experts):
        rows = router_probs[:, e] > 0
        if rows.any():
            y = self.experts[f'expert_{e}'](h[rows]) * router_probs[rows, e, None]
            out[rows] += y * (1 - self.experts.moe_token_dropout)
    return out.reshape(b, t, d)


def save(name, model, tokenizer, sources, texts, logits, greedy, beam, extra):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(os.path.join(d, 'model'), safe_serialization=True)
    tokenizer.save_pretrained(os.path.join(d, 'model'))
    ref = dict(transformers=transformers.__version__, torch=torch.__version__, texts=texts, sources=sources,
               logits=logits, greedy=greedy, beam=beam, max_new_tokens=MAX_NEW, **extra)
    with open(os.path.join(d, 'reference.json'), 'w') as f:
        json.dump(ref, f)
    print(name, 'vocab', model.config.vocab_size, 'greedy[0]', greedy[0], 'beam[0]', beam[0])


def marian(tmp, pairs):
    src = train_spm([p[0] for p in pairs], os.path.join(tmp, 'source'), 160)
    tgt = train_spm([p[1] for p in pairs], os.path.join(tmp, 'target'), 160)
    pieces = []
    for m in (src, tgt):
        sp = spm.SentencePieceProcessor(model_file=m)
        pieces += [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_control(i) and not sp.is_unknown(i)]
    vocab = {'</s>': 0, '<unk>': 1}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    vocab['<pad>'] = len(vocab)
    with open(os.path.join(tmp, 'vocab.json'), 'w') as f:
        json.dump(vocab, f, ensure_ascii=False)
    tok = MarianTokenizer(src, tgt, os.path.join(tmp, 'vocab.json'), source_lang='en', target_lang='de')
    pad = vocab['<pad>']
    cfg = MarianConfig(vocab_size=len(vocab), decoder_vocab_size=len(vocab), activation_function='swish', pad_token_id=pad,
                       eos_token_id=0, decoder_start_token_id=pad, scale_embedding=True,
                       share_encoder_decoder_embeddings=True, **TINY)
    torch.manual_seed(1)
    model = MarianMTModel(cfg)
    randomize(model, 1, 0.3)
    model.final_logits_bias[0, 0] = 2.5  # makes </s> likely enough that some hypotheses end before the limit
    texts = [p[0] for p in pairs[300 - 12:]]
    sources = [tok(t)['input_ids'] for t in texts]
    logits, greedy, beam = references(model, sources, [pad], bad_words=[[pad]])
    save('marian', model, tok, sources, texts, logits, greedy, beam, dict(source='en', target='de'))


def marian_separate(tmp, pairs):
    """Marian with separate source and target vocabularies and an untied output projection."""
    src = train_spm([p[0] for p in pairs], os.path.join(tmp, 'source'), 160)
    tgt = train_spm([p[1] for p in pairs], os.path.join(tmp, 'target'), 180)
    vocabs = []
    for m, name in ((src, 'vocab.json'), (tgt, 'target_vocab.json')):
        sp = spm.SentencePieceProcessor(model_file=m)
        vocab = {'</s>': 0, '<unk>': 1, '<pad>': 2}
        for i in range(sp.get_piece_size()):
            if not (sp.is_control(i) or sp.is_unknown(i)):
                vocab.setdefault(sp.id_to_piece(i), len(vocab))
        with open(os.path.join(tmp, name), 'w') as f:
            json.dump(vocab, f, ensure_ascii=False)
        vocabs.append(vocab)
    tok = MarianTokenizer(src, tgt, os.path.join(tmp, 'vocab.json'), target_vocab_file=os.path.join(tmp, 'target_vocab.json'),
                          source_lang='en', target_lang='de', separate_vocabs=True)
    cfg = MarianConfig(vocab_size=len(vocabs[0]), decoder_vocab_size=len(vocabs[1]), activation_function='gelu', pad_token_id=2,
                       eos_token_id=0, decoder_start_token_id=2, scale_embedding=True, share_encoder_decoder_embeddings=False,
                       tie_word_embeddings=False, **TINY)
    torch.manual_seed(4)
    model = MarianMTModel(cfg)
    randomize(model, 4, 0.3)
    model.final_logits_bias[0, 0] = 2.5
    texts = [p[0] for p in pairs[300 - 12:]]
    sources = [tok(t)['input_ids'] for t in texts]
    logits, greedy, beam = references(model, sources, [2], bad_words=[[2]])
    save('marian-separate', model, tok, sources, texts, logits, greedy, beam, dict(source='en', target='de'))


def m2m100(tmp, pairs):
    sp_path = train_spm([p[0] for p in pairs] + [p[1] for p in pairs], os.path.join(tmp, 'sentencepiece.bpe'), 250)
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    vocab = {'<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3}
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)):
            vocab.setdefault(sp.id_to_piece(i), len(vocab))
    with open(os.path.join(tmp, 'vocab.json'), 'w') as f:
        json.dump(vocab, f, ensure_ascii=False)
    tok = M2M100Tokenizer(os.path.join(tmp, 'vocab.json'), sp_path, src_lang='en', tgt_lang='de', language_codes='wmt21')
    cfg = M2M100Config(vocab_size=len(vocab) + len(tok.lang_code_to_id) + tok.num_madeup_words, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                       scale_embedding=True, activation_function='relu', **TINY)
    torch.manual_seed(2)
    model = M2M100ForConditionalGeneration(cfg)
    randomize(model, 2, 0.3)
    texts = [p[0] for p in pairs[300 - 12:]]
    sources = [tok(t)['input_ids'] for t in texts]
    de = tok.get_lang_id('de')
    logits, greedy, beam = references(model, sources, [2, de], forced_bos=de)
    save('m2m100', model, tok, sources, texts, logits, greedy, beam, dict(source='en', target='de'))


def nllb_moe(tmp, pairs):
    from transformers.models.nllb_moe import modeling_nllb_moe
    modeling_nllb_moe.NllbMoeSparseMLP.forward = fixed_nllb_moe_forward
    # NLLB numbers pieces as fairseq does: <s> <pad> </s> <unk>, then SentencePiece's pieces shifted by one,
    # then the language codes, then <mask>. A small tokenizer with four languages keeps the vocabulary small.
    sp_path = train_spm([p[0] for p in pairs] + [p[1] for p in pairs], os.path.join(tmp, 'sentencepiece.bpe'), 250)
    langs = ['eng_Latn', 'deu_Latn', 'fra_Latn', 'ces_Latn']
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    n = sp.get_piece_size()
    lang_ids = {l: n + 1 + i for i, l in enumerate(langs)}
    vocab_size = n + 1 + len(langs) + 1
    cfg = NllbMoeConfig(vocab_size=vocab_size, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                        num_experts=4, expert_capacity=64, encoder_sparse_step=2, decoder_sparse_step=2,
                        moe_eval_capacity_token_fraction=2.0, moe_token_dropout=0.2, router_bias=False,
                        scale_embedding=True, **TINY)
    torch.manual_seed(3)
    model = NllbMoeForConditionalGeneration(cfg)
    randomize(model, 3, 0.3)

    def encode(text, lang):  # NllbTokenizer's non-legacy source: [lang] pieces [</s>]
        ids = [i + 1 if i else 3 for i in sp.encode(text)]  # fairseq offset 1; SentencePiece's unk (0) is <unk> (3)
        return [lang_ids[lang]] + ids + [2]

    texts = [p[0] for p in pairs[300 - 12:]]
    sources = [encode(t, 'eng_Latn') for t in texts]
    de = lang_ids['deu_Latn']
    logits, greedy, beam = references(model, sources, [2, de], forced_bos=de)
    d = os.path.join(OUT, 'nllb-moe')
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(os.path.join(d, 'model'), safe_serialization=True)
    shutil.copy(sp_path, os.path.join(d, 'model', 'sentencepiece.bpe.model'))
    # The special tokens file of an NLLB checkpoint, trimmed to the four languages (ids as NllbTokenizer numbers them).
    added = {str(i): {'content': c, 'special': True} for c, i in [('<s>', 0), ('<pad>', 1), ('</s>', 2), ('<unk>', 3)]}
    added.update({str(i): {'content': l, 'special': True} for l, i in lang_ids.items()})
    added[str(vocab_size - 1)] = {'content': '<mask>', 'special': True}
    with open(os.path.join(d, 'model', 'tokenizer_config.json'), 'w') as f:
        json.dump({'tokenizer_class': 'NllbTokenizer', 'added_tokens_decoder': added, 'src_lang': 'eng_Latn',
                   'tgt_lang': 'deu_Latn', 'legacy_behaviour': False}, f, indent=1)
    ref = dict(transformers=transformers.__version__, torch=torch.__version__, texts=texts, sources=sources, logits=logits,
               greedy=greedy, beam=beam, max_new_tokens=MAX_NEW, source='eng_Latn', target='deu_Latn')
    with open(os.path.join(d, 'reference.json'), 'w') as f:
        json.dump(ref, f)
    print('nllb-moe vocab', vocab_size, 'greedy[0]', greedy[0], 'beam[0]', beam[0])


if __name__ == '__main__':
    torch.set_num_threads(1)
    pairs = dev_pairs()
    which = sys.argv[1:] or ['marian', 'marian_separate', 'm2m100', 'nllb_moe']
    with tempfile.TemporaryDirectory() as tmp:
        for name in which:
            globals()[name](tmp, pairs)
