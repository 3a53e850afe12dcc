"""Training throughput of gptlab's engine against a plain reference loop of the same shape.

The reference is the nanoGPT-equivalent recipe written out by hand here: learned positions,
GeLU, pre-LN, fused QKV, tied embeddings, AdamW, no hooks. gptlab runs its real loop
(`gptlab.train.loop.train_loop`, with batch = f(step) from packed memmap shards). Rounds
alternate ours / reference so that a noisy machine hurts both alike; the ratio is the result.

    python bench/train_throughput.py                       # CPU: 4 layers, d=128, T=256, B=8
    python bench/train_throughput.py --vocab 50304
    python bench/train_throughput.py --shape gpt2-124m --device cuda --precision bf16 --compile
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gptlab.config import load_config
from gptlab.device import autocast
from gptlab.model import GPT
from gptlab.pack.packed import PackedData
from gptlab.train import distributed
from gptlab.train.batches import Batches, BatchSchedule
from gptlab.train.hooks import Hook
from gptlab.train.loop import train_loop
from gptlab.train.optim import build_optimizer, lr_schedule
from gptlab.train.state import TrainState

SHAPES = {  # name: (n_layer, n_embd, n_head, T, B)
    "cpu-small": (4, 128, 4, 256, 8),
    "gpt2-124m": (12, 768, 12, 1024, 16),
    "gpt2-774m": (36, 1280, 20, 1024, 8),
}


# ----------------------------------------------------------------------------- reference

class RefBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self, L, d, h, T, V):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
        self.h = nn.ModuleList(RefBlock(d, h) for _ in range(L))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, V, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def reference_rate(L, d, h, T, B, V, steps, device, precision, compile_):
    torch.manual_seed(0)
    model = RefGPT(L, d, h, T, V).to(device)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=device.type == "cuda")
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else torch.autocast(device.type, enabled=False)
    data = torch.randint(0, V, (steps + 2, B, T + 1))
    def step(i):
        batch = data[i].to(device)
        with ctx:
            logits = fwd(batch[:, :-1])
        loss = F.cross_entropy(logits.float().view(-1, V), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    step(0).item()                                        # warm-up (and compile)
    sync(device)
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        loss = step(i)
    loss.item()
    sync(device)
    return B * T * steps / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- gptlab

def make_pack(folder: Path, V: int, T: int, n_seq: int) -> Path:
    rng = np.random.default_rng(0)
    dtype = np.uint16 if V <= 65536 else np.uint32
    rng.integers(0, V, size=(n_seq, T + 1)).astype(dtype).tofile(folder / "tokens-00000.bin")
    np.save(folder / "unigram.npy", np.ones(V, dtype=np.int64))
    (folder / "index.json").write_text(json.dumps({
        "seq_len": T, "dtype": np.dtype(dtype).name, "n_sequences": n_seq, "n_tokens": n_seq * (T + 1),
        "vocab_size": V, "eos_id": 0, "shards": [{"file": "tokens-00000.bin", "first_sequence": 0,
                                                   "n_sequences": n_seq}]}))
    return folder


def gptlab_rate(pack, L, d, h, T, B, V, steps, device, precision, compile_, preset):

    overrides = [f"model.n_layer={L}", f"model.n_embd={d}", f"model.n_head={h}", f"model.vocab_size={V}",
                 f"model.block_size={T}", f"train.batch_size={B}", f"train.max_steps={steps + 1}",
                 f"train.precision={precision}", "train.warmup_steps=0"]
    if preset:
        overrides.append(f"model.preset={preset}")
    cfg = load_config(None, overrides)
    torch.manual_seed(0)
    model = GPT(cfg.model).to(device)
    opt = build_optimizer(model, cfg.train)
    data = PackedData(pack)
    state = TrainState(step=0, model=model, optimizer=opt,
                       batches=Batches(data, BatchSchedule(cfg.train, T), seed=0), dist=distributed.Dist(),
                       device=device, scaler=torch.amp.GradScaler(device.type, enabled=False),
                       autocast=autocast(precision, device), lr_at=lr_schedule(cfg.train), seq_len=T, precision=precision,
                       forward=torch.compile(model) if compile_ else None)
    times = []

    class Timer(Hook):
        def on_step_end(self, s, m):
            times.append(time.perf_counter())
    train_loop(state, cfg.train, [Timer()])
    sync(device)
    # The first step is warm-up (and compile): measure from its end.
    return B * T * (len(times) - 1) / (times[-1] - times[0]), model.flops_per_token()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=SHAPES, default="cpu-small")
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--preset", default=None, help="a gptlab model preset (default: nanoGPT-like defaults)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (e.g. 989 for H100 bf16)")
    args = ap.parse_args(argv)
    L, d, h, T, B = SHAPES[args.shape]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipping the GPU benchmark")
        return 0
    ours, ref = [], []
    with tempfile.TemporaryDirectory() as tmp:
        pack = make_pack(Path(tmp), args.vocab, T, n_seq=B * (args.steps + 2))
        for r in range(args.rounds):
            rate, fpt = gptlab_rate(pack, L, d, h, T, B, args.vocab, args.steps, device, args.precision,
                                    args.compile, args.preset)
            ours.append(rate)
            ref.append(reference_rate(L, d, h, T, B, args.vocab, args.steps, device, args.precision, args.compile))
            print(f"round {r + 1}: gptlab {ours[-1]:,.0f} tok/s · reference {ref[-1]:,.0f} tok/s", flush=True)
    mo, mr = statistics.median(ours), statistics.median(ref)
    ratios = [o / r for o, r in zip(ours, ref)]
    print(f"shape {args.shape} (L={L}, d={d}, heads={h}, T={T}, B={B}, vocab={args.vocab}), {args.precision} on {device}")
    print(f"median tokens/s: gptlab {mo:,.0f} · reference {mr:,.0f}")
    # Contention only ever slows a round down, so the best round of each is the cleanest
    # figure; the median of per-round ratios compares runs that saw the same load.
    print(f"ratio gptlab/reference: median of rounds {statistics.median(ratios):.2f}x · "
          f"best vs best {max(ours) / max(ref):.2f}x (target >= 1.0x)")
    if args.peak_tflops:
        print(f"MFU: gptlab {fpt * mo / (args.peak_tflops * 1e12):.1%} (6N + 12·L·H·Q·T FLOPs per token)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
