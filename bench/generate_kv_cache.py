"""Decoding speed with the KV cache against recomputing the whole context at every step.

Both runs decode the same number of tokens greedily from the same model and prompt, so
they produce the same tokens (checked). Rounds alternate cached / uncached so that a noisy
machine hurts both alike; the ratio of tokens/s is the result.

    python bench/generate_kv_cache.py                              # CPU: 4 layers, d=256, 384 new tokens
    python bench/generate_kv_cache.py --position rope --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gptlab.eval.generate import Sampling, generate_ids
from gptlab.model import GPT, ModelConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=384)
    ap.add_argument("--position", default="learned", choices=("learned", "rope", "alibi"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=a.layers, n_embd=a.embd, n_head=a.heads, block_size=a.block, vocab_size=4096,
                      position=a.position)
    model = GPT(cfg).to(a.device).eval()
    prompt = torch.randint(0, 4096, (a.prompt,)).tolist()
    greedy = Sampling(temperature=0)
    generate_ids(model, prompt, 8, greedy)                       # warm-up
    speed = {True: [], False: []}
    outputs = {}
    for _ in range(a.rounds):
        for cached in (True, False):
            t = time.perf_counter()
            outputs[cached] = generate_ids(model, prompt, a.new, greedy, use_cache=cached)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            speed[cached].append(a.new / (time.perf_counter() - t))
    same = outputs[True] == outputs[False]
    cached, plain = statistics.median(speed[True]), statistics.median(speed[False])
    print(f"model {a.layers}L d={a.embd} {a.position}, prompt {a.prompt} + {a.new} new tokens, {a.device}")
    print(f"KV cache   {cached:8.1f} tokens/s")
    print(f"no cache   {plain:8.1f} tokens/s")
    print(f"speed-up   {cached / plain:8.2f}x   same tokens: {same}")


if __name__ == "__main__":
    main()
