"""Training engine: losses, optimizers, schedules, precision, determinism, exact resume."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gptlab
from gptlab.checkpoint import latest_valid
from gptlab.config import ConfigError, load_config
from gptlab.train.loop import lm_loss, run_train
from gptlab.train.optim import Adafactor, lr_schedule

SMALL = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.threads=1",
         "train.log_every=1000", "train.warmup_steps=2"]


def test_z_loss_is_coef_times_mean_log_z_squared():
    logits = torch.randn(2, 3, 5)
    y = torch.randint(0, 5, (2, 3))
    ce, z = lm_loss(logits, y, 1e-4)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.view(-1, 5), y.view(-1)).item())
    assert z.item() == pytest.approx(1e-4 * (logits.logsumexp(-1) ** 2).mean().item(), rel=1e-6)
    assert lm_loss(logits, y, 0.0)[1].item() == 0.0


def test_adafactor_matches_the_t5x_update_by_hand():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4, 3))
    p0 = p.detach().clone()
    g = torch.randn(4, 3) * 10
    opt = Adafactor([p], lr=0.01, beta1=0.9, weight_decay=1.0)
    p.grad = g.clone()
    opt.step()
    # Step 1: beta2 = 1 - 1^-0.8 = 0, so v = g² + eps1 and u = sign-ish g/|g|.
    v = g * g + 1e-30
    u = g / v.sqrt()
    u = u / max(1.0, (u.pow(2).mean().sqrt() / 1.0).item())
    scale = 0.01 * max(p0.pow(2).mean().sqrt().item(), 1e-3)
    m = 0.1 * scale * u
    expect = p0 * (1 - 0.01 ** 2) - m
    assert torch.allclose(p.detach(), expect, atol=1e-7)
    # Step 2 uses beta2 = 1 - 2^-0.8 and keeps momentum.
    p.grad = g.clone()
    opt.step()
    b2 = 1 - 2 ** -0.8
    assert torch.allclose(opt.state[p]["v"], b2 * v + (1 - b2) * (g * g + 1e-30))


def test_schedules():
    t = load_config(None, ["train.lr=1e-2", "train.warmup_steps=10000", "train.schedule=rsqrt",
                           "train.max_steps=100000"]).train
    f = lr_schedule(t)
    assert f(0) == pytest.approx(1e-2) and f(9999) == pytest.approx(1e-2)
    assert f(39999) == pytest.approx(1 / math.sqrt(40000))      # PaLM: 1/sqrt(k) after 10k steps
    c = lr_schedule(load_config(None, ["train.lr=1", "train.warmup_steps=10", "train.max_steps=110"]).train)
    assert c(0) == pytest.approx(0.1) and c(9) == pytest.approx(1.0)
    assert c(60) == pytest.approx(0.55) and c(110) == pytest.approx(0.1)   # cosine to 10 %
    w = lr_schedule(load_config(None, ["train.lr=1", "train.warmup_steps=0", "train.max_steps=100",
                                       "train.schedule=wsd", "train.wsd_decay_fraction=0.2"]).train)
    assert w(50) == 1.0 and w(79) == 1.0 and w(90) == pytest.approx(0.55)


def _train(pack, out, extra=(), steps=12):
    cfg = load_config(None, SMALL + [f"train.max_steps={steps}", "train.checkpoint_every=4"] + list(extra))
    summary = run_train(cfg.model, cfg.train, cfg.stability, pack, out, resume=True)
    losses = [json.loads(l)["loss"] for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return summary, losses


@pytest.fixture(autouse=True)
def _no_tensorboard(monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")


def _weights(run):
    return load_file(str(latest_valid(Path(run) / "checkpoints") / "model.safetensors"))


def test_same_seed_gives_bitwise_identical_losses_and_weights(pack_dir, tmp_path):
    _, a = _train(pack_dir, tmp_path / "a")
    _, b = _train(pack_dir, tmp_path / "b")
    assert a == b                                    # exact float equality, every step
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    _, c = _train(pack_dir, tmp_path / "c", ["train.seed=7"])
    assert c != a                                    # the seed matters (negative control)


@pytest.mark.parametrize("extra", [[], ["train.optimizer=adafactor", "train.schedule=rsqrt", "train.z_loss=1e-4",
                                        "train.ramp=steps", "train.ramp_steps=[5]", "train.ramp_batches=[4,8]"]])
def test_resume_is_bitwise_exact(pack_dir, tmp_path, extra):
    _, full = _train(pack_dir, tmp_path / "full", extra)
    _train(pack_dir, tmp_path / "part", extra, steps=12)
    # Cut the second run back to its step-8 checkpoint, as if it died at step 9-11.
    ck = tmp_path / "part" / "checkpoints"
    for p in ck.iterdir():
        if p.name > "step-00000008":
            shutil.rmtree(p)
    (tmp_path / "part" / "manifest.json").unlink()
    _, resumed = _train(pack_dir, tmp_path / "part", extra)
    assert resumed == full
    wa, wb = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_refuses_a_changed_config(pack_dir, tmp_path):
    _train(pack_dir, tmp_path / "r", steps=4)
    (tmp_path / "r" / "manifest.json").unlink()
    with pytest.raises(ConfigError, match="different model/train config"):
        _train(pack_dir, tmp_path / "r", ["train.lr=0.01"], steps=8)


def test_fp16_uses_a_dynamic_loss_scale_kept_in_the_checkpoint(pack_dir, tmp_path):
    summary, losses = _train(pack_dir, tmp_path / "h", ["train.precision=fp16"], steps=6)
    rows = [json.loads(l) for l in (tmp_path / "h" / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_scale" in r and "skipped_step" in r for r in rows)
    assert summary["precision"] == "fp16"
    st = json.loads((latest_valid(tmp_path / "h" / "checkpoints") / "state.json").read_text())
    assert st["scaler"]["scale"] == rows[-1]["loss_scale"]


def test_metrics_have_the_documented_fields(pack_dir, tmp_path):
    _train(pack_dir, tmp_path / "m", ["train.z_loss=1e-4", "train.peak_tflops=1", "train.log_every=1"],
           steps=3)
    row = json.loads((tmp_path / "m" / "metrics.jsonl").read_text().splitlines()[-1])
    for k in ("loss", "z_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "batch_size", "max_logit"):
        assert k in row, k
    assert row["z_loss"] > 0 and 0 < row["mfu"]


def _cli(args, **kw):
    env = {**os.environ, "GPTLAB_TENSORBOARD": "0", "GPTLAB_PROGRESS": "0",
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.Popen([sys.executable, "-m", "gptlab.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_gives_bitwise_identical_weights(pack_dir, tmp_path):
    pack = str(pack_dir)
    args = SMALL + ["train.max_steps=30", "train.checkpoint_every=3"]
    ref = _cli(["train", "--data", pack, "--out", str(tmp_path / "ref"), *args])
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    victim = _cli(["train", "--data", pack, "--out", str(tmp_path / "v"), *args])
    metrics = tmp_path / "v" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:                 # kill somewhere between checkpoints, mid-run
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 17:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "v" / "manifest.json").exists()
    again = _cli(["train", "--data", pack, "--out", str(tmp_path / "v"), "--resume", *args])
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert "resumed from" in again.stderr.read()
    wa, wb = _weights(tmp_path / "ref"), _weights(tmp_path / "v")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    la = [json.loads(l)["loss"] for l in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(l)["loss"] for l in metrics.read_text().splitlines()]
    assert la == lb


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_torchrun_two_ranks_match_one_process(pack_dir, tmp_path, mode):
    pack = str(pack_dir)
    args = SMALL + ["train.max_steps=8", "train.checkpoint_every=4", f"train.distributed={mode}"]
    _, single = _train(pack_dir, tmp_path / "one", [f"train.distributed={mode}"], steps=8)
    env = {**os.environ, "GPTLAB_TENSORBOARD": "0", "GPTLAB_PROGRESS": "0",
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run([*torchrun, "-m", "gptlab.cli", "train", "--data", pack, "--out", str(tmp_path / "two"),
                        *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    two = [json.loads(l)["loss"] for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(two) == len(single) == 8
    # Same global batch, split over two ranks: equal up to float summation order.
    assert max(abs(a - b) for a, b in zip(single, two)) < 1e-4
    wa, wb = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4


@pytest.mark.parametrize("preset", ["gpt3", "opt", "bloom", "palm", "palm_sequential", "glm", "llama", "nanogpt"])
def test_every_preset_trains_through_gptlab_train(pack_dir, tmp_path, preset):
    """Each recipe (its architecture, optimizer, schedule, z-loss...) at a toy size on the demo's
    packed data. Batch sizes, ramps and peak learning rates are set for the recipe's own scale
    (BLOOM's 6e-5 is for 176B parameters): a laptop run overrides them, as here."""
    cfg = load_config(None, [f"model.preset={preset}", "model.n_layer=2", "model.n_embd=32", "model.n_head=4",
                             "train.batch_size=8", "train.ramp=none", "train.max_steps=30", "train.warmup_steps=10",
                             "train.precision=fp32", "train.threads=1", "train.log_every=1000",
                             "train.checkpoint_every=30", "stability.enabled=false", "train.lr=3e-3"])
    run_train(cfg.model, cfg.train, cfg.stability, pack_dir, tmp_path / preset)
    rows = [json.loads(l) for l in (tmp_path / preset / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["loss"] for r in rows[:3]) / 3
    last = sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.1, (preset, first, last)
    assert gptlab.load_model(tmp_path / preset).config.n_embd == 32


def test_activation_checkpointing_gives_the_same_training(pack_dir, tmp_path):
    """Recomputing each block in the backward changes memory, not the maths."""
    _, plain = _train(pack_dir, tmp_path / "plain", steps=4)
    _, ckpt = _train(pack_dir, tmp_path / "ac", ["train.activation_checkpointing=true"], steps=4)
    assert ckpt == pytest.approx(plain, abs=1e-6)
    wa, wb = _weights(tmp_path / "plain"), _weights(tmp_path / "ac")
    assert wa.keys() == wb.keys()
