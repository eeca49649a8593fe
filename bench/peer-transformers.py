#!/usr/bin/env python3
"""taskmoe beside Hugging Face Transformers (PyTorch, CPU) on the same model shape.

A random Marian model (d 512, FFN 2048, 8 heads, 6+6 layers, vocabulary 32000) decodes greedily in
Transformers; taskmoe decodes its dense wmt32 shape of `bench engine` (the same dimensions, random
weights) on ONNX Runtime and on tfjs-wasm, in a child process (src/bench/peer-taskmoe.ts). Same
source ids (32 tokens), 32 new tokens each (EOS ignored), the same intra-op thread count, runs
interleaved in one session; prints target tokens/s at batch 1, 8 and 32 (medians).

Not run by CI. Needs `pip install --retries 0 torch transformers` (the image's local index serves
them offline) and the repository's node_modules.

    python3 bench/peer-transformers.py [--threads 2] [--batches 1,8,32] [--reps 3] [--engines onnx,wasm] [--lock FILE]
"""
import argparse
import fcntl
import json
import os
import random
import statistics
import subprocess
import time

import torch
from transformers import MarianConfig, MarianMTModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_LEN = 32
NEW_TOKENS = 32
VOCAB = 32000


def marian() -> MarianMTModel:
    cfg = MarianConfig(
        vocab_size=VOCAB, d_model=512, encoder_layers=6, decoder_layers=6,
        encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
        max_position_embeddings=128, pad_token_id=0, eos_token_id=3, decoder_start_token_id=2,
        forced_eos_token_id=None, scale_embedding=True,
    )
    torch.manual_seed(0)
    return MarianMTModel(cfg).eval()


def transformers_seconds(model: MarianMTModel, ids: list[list[int]]) -> float:
    input_ids = torch.tensor(ids, dtype=torch.long)
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False, num_beams=1,
            max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, use_cache=True,
        )
        seconds = time.perf_counter() - t0
    assert out.shape[1] == NEW_TOKENS + 1, out.shape  # decoder start token + the new ones
    return seconds


class Taskmoe:
    """The taskmoe child process: one JSON request per line, one answer per line."""

    def __init__(self, threads: int):
        env = {**os.environ, 'TASKMOE_ONNX_THREADS': str(threads)}
        self.proc = subprocess.Popen(
            ['node', '--import', 'tsx', 'src/bench/peer-taskmoe.ts'], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        ready = json.loads(self.proc.stdout.readline())
        assert ready.get('ready'), ready

    def seconds(self, engine: str, ids: list[list[int]]) -> float:
        self.proc.stdin.write(json.dumps({'engine': engine, 'ids': ids, 'newTokens': NEW_TOKENS}) + '\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())['seconds']

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batches', default='1,8,32')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--engines', default='onnx,wasm', help='taskmoe engines to run beside Transformers')
    ap.add_argument('--lock', help='a file to flock(2) once both models are built, for the timed runs only (a machine shared by several benchmarks)')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(',')]
    engines = [e for e in args.engines.split(',') if e]
    rng = random.Random(1)
    inputs = {b: [[rng.randrange(4, VOCAB) for _ in range(SRC_LEN)] for _ in range(b)] for b in batches}

    model = marian()
    taskmoe = Taskmoe(args.threads)
    lock = open(args.lock, 'a') if args.lock else None
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the process exits
        # Built at a lower priority (started under nice); timed at the normal one, every thread of both processes.
        for pid in (os.getpid(), taskmoe.proc.pid):
            for tid in os.listdir(f'/proc/{pid}/task'):
                os.setpriority(os.PRIO_PROCESS, int(tid), 0)
    print(f'load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the start of the timed runs, {time.strftime("%H:%M:%S", time.gmtime())} UTC', flush=True)
    print(f'torch {torch.__version__}, {args.threads} threads; taskmoe ONNX Runtime {args.threads} intra-op threads, wasm 1 thread; '
          f'{SRC_LEN} source tokens, {NEW_TOKENS} new tokens, greedy; {args.reps} interleaved runs, medians', flush=True)
    for b in batches:  # warm-up, untimed
        transformers_seconds(model, inputs[b][:1])
        for e in engines:
            taskmoe.seconds(e, inputs[b][:1])
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.reps):
        for b in batches:
            for name in ['transformers', *engines]:
                s = transformers_seconds(model, inputs[b]) if name == 'transformers' else taskmoe.seconds(name, inputs[b])
                runs.setdefault((name, b), []).append(s)
    taskmoe.close()

    names = ['transformers', *[f'taskmoe-{e}' for e in engines]]
    print('\n| batch | ' + ' | '.join(f'{n} tok/s' for n in names) + ' | ' + ' | '.join(f'taskmoe-{e} / transformers' for e in engines) + ' |')
    print('|---' * (1 + len(names) + len(engines)) + '|')
    for b in batches:
        tps = {n: b * NEW_TOKENS / statistics.median(runs[(n.removeprefix('taskmoe-'), b)]) for n in names}
        ratios = [f"{tps[f'taskmoe-{e}'] / tps['transformers']:.2f}" for e in engines]
        print(f'| {b} | ' + ' | '.join(f'{tps[n]:.1f}' for n in names) + ' | ' + ' | '.join(ratios) + ' |')
    print('\nevery run, tok/s:')
    for b in batches:
        for n in names:
            print(f'  batch {b} {n}: ' + ', '.join(f'{b * NEW_TOKENS / s:.1f}' for s in runs[(n.removeprefix("taskmoe-"), b)]))
    print(f'load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end', flush=True)


if __name__ == '__main__':
    main()
