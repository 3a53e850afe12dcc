"""Tensor parallelism (DTensor, ``train.tensor_parallel``) trains exactly like one process.

Each case launches `gptlab train` under torchrun with gloo on the CPU and compares its losses
and its saved (gathered, fused) weights with a single-process run of the same config: the
same global batch, the matmuls split by heads and hidden units, equal up to float summation
order. The cases cover the attention variants TP must get right: multi-head with a tied
embedding and learned positions; multi-query (one k/v head for two ranks) with SwiGLU, RoPE
and an untied head; grouped-query k/v heads split between ranks, with ALiBi and biases,
under TP × FSDP on a (dp, tp) mesh of four processes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gptlab.checkpoint import latest_valid
from gptlab.config import load_config
from gptlab.errors import ConfigError
from gptlab.train import distributed
from gptlab.train.loop import run_train

SRC = str(Path(__file__).parents[2] / "src")
BASE = ["model.n_layer=2", "model.n_embd=32", "model.n_head=4", "train.batch_size=8", "train.threads=1",
        "train.log_every=1000", "train.warmup_steps=2", "train.max_steps=6", "train.checkpoint_every=3",
        "train.precision=fp32", "stability.enabled=false"]
CASES = {
    "mha_tied": (2, ["train.distributed=ddp"]),
    "mqa_swiglu_rope": (2, ["model.n_kv_head=1", "model.mlp=swiglu", "model.position=rope", "model.norm=rmsnorm",
                            "model.tie_embeddings=false", "model.bias=false"]),
    "gqa_alibi_fsdp": (4, ["model.n_kv_head=2", "model.position=alibi", "model.bias=true",
                           "train.distributed=fsdp"]),
}


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict:
    return load_file(str(latest_valid(run / "checkpoints") / "model.safetensors"))


def _torchrun(nproc: int, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPTLAB_TENSORBOARD": "0", "GPTLAB_PROGRESS": "0", "PYTHONPATH": SRC,
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "gptlab.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_tensor_parallel_matches_one_process(pack_dir, tmp_path, monkeypatch, case):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    nproc, extra = CASES[case]
    args = BASE + extra
    cfg = load_config(None, args)
    run_train(cfg.model, cfg.train, cfg.stability, pack_dir, tmp_path / "one")
    r = _torchrun(nproc, ["train", "--data", str(pack_dir), "--out", str(tmp_path / "tp"), *args,
                          "train.tensor_parallel=2"])
    assert r.returncode == 0, r.stderr[-4000:]
    single, tp = _losses(tmp_path / "one"), _losses(tmp_path / "tp")
    assert len(tp) == len(single) == 6
    assert max(abs(a - b) for a, b in zip(single, tp)) < 1e-4
    # The checkpoint is the single-process layout (fused qkv_proj, full tensors, tied alias).
    wa, wb = _weights(tmp_path / "one"), _weights(tmp_path / "tp")
    assert wa.keys() == wb.keys()
    assert all(wa[k].shape == wb[k].shape for k in wa)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    # The weights moved: equal checkpoints are not equal by staying at the init.
    first = load_file(str(tmp_path / "one" / "checkpoints" / "step-00000003" / "model.safetensors"))
    assert max((first[k] - wa[k]).abs().max().item() for k in wa) > 1e-3


@pytest.mark.slow
def test_resume_under_tensor_parallel_continues_the_run(pack_dir, tmp_path, monkeypatch):
    """Drop the last checkpoint and resume from step 3 under TP (the fused files split back onto
    the ranks, optimizer state too): the end must be the uninterrupted end."""
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    nproc, extra = CASES["mqa_swiglu_rope"]
    cmd = ["train", "--resume", "--data", str(pack_dir), "--out", str(tmp_path / "tp"), *BASE, *extra,
           "train.tensor_parallel=2"]
    assert _torchrun(nproc, cmd).returncode == 0
    whole = _weights(tmp_path / "tp")
    shutil.rmtree(tmp_path / "tp" / "checkpoints" / "step-00000006")
    (tmp_path / "tp" / "manifest.json").unlink()
    r = _torchrun(nproc, cmd)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "resumed from step-00000003" in r.stderr
    resumed = _weights(tmp_path / "tp")
    # Bitwise: the same ranks, the same reduction order, the same state.
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_checkpoint_layout_round_trips_between_split_and_fused_qkv():
    """Under TP, q/k/v are three projections; checkpoints hold the fused single-process layout."""
    sizes = [8, 4, 4]
    pre = "layers.0.self_attn.qkv_proj."
    fused_w, fused_b = torch.randn(16, 6), torch.randn(16)
    model_sd = {f"{pre}weight": fused_w, f"{pre}bias": fused_b, "norm.weight": torch.ones(6)}
    split = distributed._split_tp_qkv(model_sd, sizes)
    assert split[f"{pre}k.weight"].shape == (4, 6) and f"{pre}weight" not in split
    back = distributed._fuse_tp_qkv(split)
    assert back.keys() == model_sd.keys() and all(torch.equal(back[k], model_sd[k]) for k in back)
    osd = {"state": {f"{pre}weight": {"step": torch.tensor(3.0), "exp_avg": fused_w * 2}},
           "param_groups": [{"params": ["a.weight", f"{pre}weight", "b.weight"], "lr": 1.0},
                            {"params": [f"{pre}bias"], "lr": 1.0}]}
    s = distributed._split_tp_optim(osd, sizes)
    assert s["param_groups"][0]["params"] == ["a.weight", f"{pre}q.weight", f"{pre}k.weight", f"{pre}v.weight",
                                              "b.weight"]
    assert torch.equal(s["state"][f"{pre}v.weight"]["exp_avg"], (fused_w * 2)[12:])
    # AdamW bumps `step` in place: q, k and v must not share one counter (a resumed TP run once
    # advanced it three times a step, and drifted from the uninterrupted run).
    steps = [s["state"][f"{pre}{p}.weight"]["step"] for p in "qkv"]
    assert len({id(t) for t in steps}) == 3 and all(torch.equal(t, torch.tensor(3.0)) for t in steps)
    f = distributed._fuse_tp_optim(s)
    assert f["param_groups"] == osd["param_groups"]
    assert torch.equal(f["state"][f"{pre}weight"]["exp_avg"], fused_w * 2)
    assert torch.equal(f["state"][f"{pre}weight"]["step"], torch.tensor(3.0))


@pytest.mark.parametrize("world,mode,message", [(3, "fsdp", "does not divide the 3 ranks"),
                                                (4, "ddp", "needs train.distributed=fsdp")])
def test_impossible_layouts_are_one_line_config_errors(monkeypatch, world, mode, message):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    with pytest.raises(ConfigError, match=message):
        distributed.setup(mode, tensor_parallel=2)
