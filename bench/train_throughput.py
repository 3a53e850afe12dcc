"""Training throughput of gptlab's engine against a plain reference loop of the same shape.

The reference is the nanoGPT-equivalent recipe written out by hand here: learned positions,
GeLU, pre-LN, fused QKV, tied embeddings, AdamW, no hooks. gptlab runs its real loop
(`gptlab.train.loop.train_loop`, with batch = f(step) from packed memmap shards). Rounds
alternate ours / reference so that a noisy machine hurts both alike; the ratio is the result.

    python bench/train_throughput.py                       # CPU: 4 layers, d=128, T=256, B=8
    python bench/train_throughput.py --vocab 50304
    python bench/train_throughput.py --shape gpt2-124m --device cuda --precision bf16 --compile

Engines for the gptlab side: ``loop`` runs ``train_loop`` as it is (batches from a packed
memmap, hooks, its loss on full logits); ``step`` runs the bare step the loop is meant to
reach: ``model(x, targets=y)`` with the chunked loss (``--loss plain`` for full logits),
``build_optimizer`` (fused AdamW on CUDA), clipping, and no host read until the end.
``--json FILE`` writes every figure (tokens/s, ms/iter, MFU, peak memory, per round).

``--nanogpt PATH`` makes the anchor nanoGPT's own ``train.py`` from a checkout you give
(``git clone https://github.com/karpathy/nanoGPT``; it is not vendored and nothing is
downloaded): each round runs it in a subprocess, in a scratch folder holding random uint16
tokens as ``data/gptlab_bench/{train,val}.bin`` and its ``configurator.py``, with the same
shape, batch, precision and no dropout or bias, and reads the per-iteration times it logs
(``iter N: loss L, time T ms``), skipping the warm-up iterations (the first also evaluates).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gptlab.config import load_config
from gptlab.device import autocast, peak_flops, set_determinism
from gptlab.model import GPT
from gptlab.model.gpt import compile_model
from gptlab.model.loss import plain_lm_loss_from_logits
from gptlab.pack.packed import PackedData
from gptlab.train import distributed
from gptlab.train.batches import Batches, BatchSchedule
from gptlab.train.hooks import Hook
from gptlab.train.loop import train_loop
from gptlab.train.optim import build_optimizer, lr_schedule
from gptlab.train.state import TrainState

SHAPES = {  # name: (n_layer, n_embd, n_head, T, B)
    "cpu-tiny": (2, 64, 4, 64, 4),
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


def ref_flops_per_token(model: RefGPT, L, d, h, T) -> float:
    """6N + 12·L·H·Q·T, N without the position table (the tied table is the head)."""
    n = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    return 6 * n + 12 * L * h * (d // h) * T


def reference_rate(L, d, h, T, B, V, steps, device, precision, compile_, warmup=1, info=None):
    torch.manual_seed(0)
    model = RefGPT(L, d, h, T, V).to(device)
    if info is not None:
        info["flops_per_token"] = ref_flops_per_token(model, L, d, h, T)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=device.type == "cuda")
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else torch.autocast(device.type, enabled=False)
    data = torch.randint(0, V, (steps + warmup + 1, B, T + 1))
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
    for i in range(warmup):
        step(i).item()                                    # warm-up (and compile)
    sync(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(i)
    loss.item()
    sync(device)
    return B * T * steps / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------- nanoGPT's own train.py

NANOGPT_FILES = ("train.py", "model.py", "configurator.py")
_ITER = re.compile(r"^iter (\d+): loss [-+\d.eE]+, time ([\d.]+)ms", re.M)


def nanogpt_checkout(path: str) -> Path | None:
    """The checkout, or None (after one line on stderr) when it is not one."""
    root = Path(path)
    missing = [f for f in NANOGPT_FILES if not (root / f).is_file()]
    if missing:
        print(f"--nanogpt: {path} is not a nanoGPT checkout (no {', '.join(missing)}); clone "
              f"https://github.com/karpathy/nanoGPT and give its folder (nothing is downloaded)", file=sys.stderr)
        return None
    return root


def nanogpt_flops_per_token(L, d, h, T, V) -> float:
    """nanoGPT's own count: 6N + 12·L·H·Q·T, N without the position table, bias=False."""
    n = L * (12 * d * d + 2 * d) + d + V * d
    return 6 * n + 12 * L * h * (d // h) * T


def nanogpt_rate(root: Path, L, d, h, T, B, V, steps, device, precision, compile_, warmup=1, info=None) -> float:
    """Tokens/s of nanoGPT's train.py over its timed iterations (median of its logged times)."""
    if info is not None:
        info["flops_per_token"] = nanogpt_flops_per_token(L, d, h, T, V)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data" / "gptlab_bench"
        data.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for split, n in (("train", B * (T + 1) * 64), ("val", B * (T + 1) * 4)):
            rng.integers(0, V, n, dtype=np.uint16).tofile(data / f"{split}.bin")
        with open(data / "meta.pkl", "wb") as f:
            pickle.dump({"vocab_size": V}, f)
        os.symlink(root.resolve() / "configurator.py", Path(tmp) / "configurator.py")  # train.py exec()s it from cwd
        iters = warmup + 1 + steps
        cmd = [sys.executable, str(root.resolve() / "train.py"), "--dataset=gptlab_bench", f"--out_dir={tmp}/out",
               f"--n_layer={L}", f"--n_head={h}", f"--n_embd={d}", f"--block_size={T}", f"--batch_size={B}",
               "--gradient_accumulation_steps=1", "--dropout=0.0", "--bias=False", f"--max_iters={iters}",
               f"--lr_decay_iters={iters}", "--warmup_iters=1", "--eval_interval=1000000", "--eval_iters=1",
               "--log_interval=1", "--always_save_checkpoint=False", "--wandb_log=False", f"--device={device}",
               f"--dtype={'bfloat16' if precision == 'bf16' else 'float32'}", f"--compile={bool(compile_)}"]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    times = {int(i): float(ms) for i, ms in _ITER.findall(r.stdout)}
    timed = [ms for i, ms in sorted(times.items()) if i > warmup]
    if r.returncode != 0 or not timed:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"nanoGPT train.py failed (exit {r.returncode}): {tail[0]}")
    return B * T / (statistics.median(timed) / 1000)


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


def gptlab_config(L, d, h, T, B, V, steps, precision, preset, extra=()):
    overrides = [f"model.n_layer={L}", f"model.n_embd={d}", f"model.n_head={h}", f"model.vocab_size={V}",
                 f"model.block_size={T}", f"train.batch_size={B}", f"train.max_steps={steps}",
                 f"train.precision={precision}", "train.warmup_steps=0", "train.ramp=none"]
    if preset:
        overrides.insert(0, f"model.preset={preset}")
    return load_config(None, [*overrides, *extra])


def weights_sha256(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def gptlab_rate(pack, L, d, h, T, B, V, steps, device, precision, compile_, preset, warmup=1, extra=(),
                info=None):
    cfg = gptlab_config(L, d, h, T, B, V, steps + warmup, precision, preset, extra)
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
    if info is not None:
        info["weights_sha256"] = weights_sha256(model)
    # The first steps are warm-up (and compile): measure from the end of the last of them.
    return B * T * (len(times) - warmup) / (times[-1] - times[warmup - 1]), model.flops_per_token()


def gptlab_step_rate(L, d, h, T, B, V, steps, device, precision, compile_, preset, warmup=1, extra=(),
                     loss_impl="chunked", compile_mode="full", info=None, attention="sdpa"):
    """The bare gptlab step: model + chunked loss + build_optimizer, no hooks, no host reads."""
    cfg = gptlab_config(L, d, h, T, B, V, steps + warmup, precision, preset, extra)
    torch.manual_seed(0)
    model = GPT(cfg.model).to(device)
    model.attention_impl = attention
    opt = build_optimizer(model, cfg.train)
    fwd = compile_model(model, compile_mode) if compile_ else model
    ctx = autocast(precision, device)
    z_coef, clip = cfg.train.z_loss, cfg.train.grad_clip or float("inf")
    for group in opt.param_groups:
        group["lr"] = cfg.train.lr * 0.1
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, V, (steps + warmup, B, T + 1), generator=g)

    def step(i):
        batch = data[i].to(device, non_blocking=True)
        x, y = batch[:, :-1], batch[:, 1:]
        with ctx:
            out = fwd(x, targets=y, z_coef=z_coef) if loss_impl == "chunked" else fwd(x)
        if loss_impl != "chunked":
            out = plain_lm_loss_from_logits(out, y, z_coef)
        (out.ce + out.z).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.ce

    for i in range(warmup):
        step(i).item()
    sync(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(i)
    last = loss.item()
    sync(device)
    rate = B * T * steps / (time.perf_counter() - t0)
    if info is not None:
        info["weights_sha256"] = weights_sha256(model)
        info["last_loss"] = last
    return rate, model.flops_per_token()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_memory(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def summarise(rates: list[float], fpt: float, B: int, T: int, peak: float | None, mem: list) -> dict:
    best = max(rates)
    return {"tokens_per_s": statistics.median(rates), "tokens_per_s_best": best, "rounds": rates,
            "ms_per_iter": 1000 * B * T / statistics.median(rates), "ms_per_iter_best": 1000 * B * T / best,
            "flops_per_token": fpt, "mfu": fpt * statistics.median(rates) / peak if peak else None,
            "mfu_best": fpt * best / peak if peak else None,
            "peak_mem_gib": max((m for m in mem if m is not None), default=None)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=SHAPES, default="cpu-small")
    ap.add_argument("--batch", type=int, default=None, help="override the shape's batch size")
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (compile happens here)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-mode", default="full", choices=("full", "regional"),
                    help="gptlab step engine: the whole model, or each block (reference: always full)")
    ap.add_argument("--engine", default="loop", choices=("loop", "step"), help="gptlab side (see above)")
    ap.add_argument("--loss", default="chunked", choices=("chunked", "plain"), help="step engine's loss")
    ap.add_argument("--attention", default="sdpa", choices=("sdpa", "flex", "auto"),
                    help="step engine, ALiBi models: SDPA with a bias, or FlexAttention")
    ap.add_argument("--preset", default=None, help="a gptlab model preset (default: nanoGPT-like defaults)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a gptlab config override (repeatable), e.g. --set model.bias=false")
    ap.add_argument("--no-reference", action="store_true", help="time the gptlab side only")
    ap.add_argument("--nanogpt", metavar="PATH", help="anchor on nanoGPT's real train.py from this checkout")
    ap.add_argument("--deterministic", action="store_true", help="train.deterministic's switches")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (e.g. 989 for H100 bf16)")
    ap.add_argument("--json", default=None, help="write every figure here")
    args = ap.parse_args(argv)
    nanogpt = None
    if args.nanogpt is not None:
        nanogpt = nanogpt_checkout(args.nanogpt)
        if nanogpt is None:
            return 2
    L, d, h, T, B = SHAPES[args.shape]
    B = args.batch or B
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipping the GPU benchmark")
        return 0
    set_determinism(args.deterministic)
    ref_name = "nanoGPT train.py" if nanogpt is not None else "reference"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(0.0, device)
    ours, ref, mem_ours, mem_ref = [], [], [], []
    info_ours: dict = {}
    info_ref: dict = {}
    fpt = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        pack = make_pack(Path(tmp), args.vocab, T, n_seq=B * (args.steps + args.warmup + 1))
        for r in range(args.rounds):
            reset_memory(device)
            if args.engine == "loop":
                rate, fpt = gptlab_rate(pack, L, d, h, T, B, args.vocab, args.steps, device, args.precision,
                                        args.compile, args.preset, args.warmup, args.set, info_ours)
            else:
                rate, fpt = gptlab_step_rate(L, d, h, T, B, args.vocab, args.steps, device, args.precision,
                                             args.compile, args.preset, args.warmup, args.set, args.loss,
                                             args.compile_mode, info_ours, args.attention)
            ours.append(rate)
            mem_ours.append(peak_memory_gib(device))
            line = f"round {r + 1}: gptlab {ours[-1]:,.0f} tok/s"
            if not args.no_reference:
                reset_memory(device)
                if nanogpt is not None:  # its own process: its peak memory is not ours to read
                    ref.append(nanogpt_rate(nanogpt, L, d, h, T, B, args.vocab, args.steps, args.device,
                                            args.precision, args.compile, args.warmup, info_ref))
                    mem_ref.append(None)
                else:
                    ref.append(reference_rate(L, d, h, T, B, args.vocab, args.steps, device, args.precision,
                                              args.compile, args.warmup, info_ref))
                    mem_ref.append(peak_memory_gib(device))
                line += f" · {ref_name} {ref[-1]:,.0f} tok/s"
            print(line, flush=True)
    print(f"shape {args.shape} (L={L}, d={d}, heads={h}, T={T}, B={B}, vocab={args.vocab}), {args.precision} on {device}"
          f"{f', preset {args.preset}' if args.preset else ''}, engine {args.engine}")
    result = {"shape": args.shape, "L": L, "d": d, "heads": h, "T": T, "B": B, "vocab": args.vocab,
              "preset": args.preset, "overrides": args.set, "precision": args.precision, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "compile": args.compile, "compile_mode": args.compile_mode,
              "engine": args.engine, "loss": args.loss if args.engine == "step" else "plain",
              "attention": args.attention,
              "steps": args.steps, "warmup": args.warmup, "peak_flops": peak,
              "gptlab": {**summarise(ours, fpt, B, T, peak, mem_ours), **info_ours}}
    mo = statistics.median(ours)
    msg = f"median tokens/s: gptlab {mo:,.0f} ({1000 * B * T / mo:.1f} ms/iter)"
    if ref:
        mr = statistics.median(ref)
        result["reference"] = {**summarise(ref, info_ref["flops_per_token"], B, T, peak, mem_ref),
                               "kind": "nanoGPT train.py" if nanogpt is not None else "look-alike loop",
                               "checkout": str(nanogpt) if nanogpt is not None else None}
        ratios = [o / r for o, r in zip(ours, ref)]
        result["ratio_median_of_rounds"] = statistics.median(ratios)
        result["ratio_best_vs_best"] = max(ours) / max(ref)
        print(f"{msg} · {ref_name} {mr:,.0f} ({1000 * B * T / mr:.1f} ms/iter)")
        # Contention only ever slows a round down, so the best round of each is the cleanest
        # figure; the median of per-round ratios compares runs that saw the same load.
        print(f"ratio gptlab/{ref_name}: median of rounds {statistics.median(ratios):.2f}x · "
              f"best vs best {max(ours) / max(ref):.2f}x (target >= 1.0x)")
    else:
        print(msg)
    if peak:
        mfu = f"MFU: gptlab {result['gptlab']['mfu']:.1%}"
        if ref:
            mfu += f" · {ref_name} {result['reference']['mfu']:.1%}"
        print(f"{mfu} (6N + 12·L·H·Q·T FLOPs per token, peak {peak / 1e12:.0f} TFLOP/s)")
    if device.type == "cuda":
        print(f"peak memory: gptlab {result['gptlab']['peak_mem_gib']:.1f} GiB"
              + (f" · reference {result['reference']['peak_mem_gib']:.1f} GiB" if ref else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
