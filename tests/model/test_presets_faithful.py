"""Recipes at laptop scale: every preset resolves at the user's batch size, keeps its own
training recipe (ramp as fractions of the run), and trains through run_train."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gptlab.config import load_config
from gptlab.device import resolve_precision, slow_precision_warning
from gptlab.interop.adapters import ExportRefused, pick_adapter
from gptlab.model import GPT
from gptlab.model.config import ModelConfig
from gptlab.model.presets import preset_fragment
from gptlab.model.presets.table import BEGIN, END, render, splice
from gptlab.train.batches import BatchSchedule
from gptlab.train.loop import run_train
from gptlab.train.optim import lr_schedule, warmup_steps

NAMES = ["gpt3", "opt", "bloom", "palm", "palm_sequential", "glm", "llama", "nanogpt"]
ROOT = Path(__file__).resolve().parents[2]
RECIPE_KEYS = ("optimizer", "schedule", "ramp", "z_loss", "ramp_start_fraction", "ramp_fraction",
               "ramp_step_fractions", "ramp_batch_fractions", "warmup_fraction", "decay_scope")


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_resolves_at_batch_16_and_keeps_its_recipe(name):
    cfg = load_config(None, [f"model.preset={name}", "train.batch_size=16", "train.max_steps=40"])
    frag = preset_fragment(name)["train"]
    for key in RECIPE_KEYS:
        if key in frag:
            assert getattr(cfg.train, key) == frag[key], key
    sizes = [BatchSchedule(cfg.train, 64).size(k) for k in range(40)]
    assert max(sizes) == sizes[-1] == 16 and min(sizes) >= 1


def test_palm_ramp_is_a_quarter_half_full_at_palms_step_fractions():
    t = load_config(None, ["model.preset=palm", "train.batch_size=16", "train.max_steps=255"]).train
    s = BatchSchedule(t, 64)
    assert [s.size(k) for k in (0, 49, 50, 114, 115, 254)] == [4, 4, 8, 8, 16, 16]
    # The paper's own scale gives the paper's own numbers.
    t = load_config(None, ["model.preset=palm", "train.max_steps=255000"]).train
    s = BatchSchedule(t, 2048)
    assert [s.size(k) for k in (0, 49_999, 50_000, 115_000)] == [512, 512, 1024, 2048]


@pytest.mark.parametrize("name, start", [("bloom", 192), ("glm", 192), ("gpt3", 16)])
def test_linear_ramps_at_paper_scale_start_where_the_paper_does(name, start):
    t = load_config(None, [f"model.preset={name}"]).train
    assert BatchSchedule(t, 2048).size(0) == start


def test_gpt3_linear_ramp_reaches_the_full_batch_after_4_of_300_parts_of_the_budget():
    t = load_config(None, ["model.preset=gpt3", "train.batch_size=64", "train.max_steps=3000"]).train
    s = BatchSchedule(t, 32)
    budget = 3000 * 64 * 32
    assert s.size(0) == 4                                       # 1/16 of 64 (32k of 0.5M tokens)
    full = next(k for k in range(3000) if s.size(k) == 64)
    assert s.start(full - 1) * 32 < budget * 4 / 300 <= s.start(full) * 32 + 64 * 32


def test_a_users_absolute_key_replaces_the_presets_fraction():
    t = load_config(None, ["model.preset=bloom", "train.batch_size=16", "train.ramp_start_batch=4",
                           "train.ramp_tokens=1000", "train.warmup_steps=7"]).train
    assert BatchSchedule(t, 10).size(0) == 4 and BatchSchedule(t, 10).ramp_tokens == 1000
    assert warmup_steps(t) == 7
    t = load_config(None, ["model.preset=palm", "train.batch_size=8", "train.ramp_steps=[3]",
                           "train.ramp_batches=[2, 8]"]).train
    assert [BatchSchedule(t, 10).size(k) for k in (0, 2, 3)] == [2, 2, 8]


def test_opt_schedule_is_linear_decay_to_a_tenth_after_375m_of_300b_tokens():
    # metaseq polynomial_decay (power 1), end LR 0.1 x lr; TOTAL_WARMUP_TOKENS = 375e6.
    t = load_config(None, ["model.preset=opt", "train.max_steps=80_000"]).train
    assert t.schedule == "linear" and warmup_steps(t) == 100          # 375M/300B of 80k steps
    f = lr_schedule(t)
    assert f(99) == pytest.approx(6e-4)
    mid = 100 + (80_000 - 100) // 2
    assert f(mid) == pytest.approx(6e-4 * (1 - 0.5 * 0.9), rel=1e-4)  # linear, not cosine
    assert f(79_999) == pytest.approx(6e-5, rel=1e-3)


def test_gpt3_warmup_is_375m_of_300b_and_cosine_ends_at_260b():
    t = load_config(None, ["model.preset=gpt3", "train.max_steps=300_000"]).train
    assert warmup_steps(t) == 375
    f = lr_schedule(t)
    assert f(374) == pytest.approx(6e-4) and f(100) < 6e-4
    assert f(260_000) == pytest.approx(6e-5) and f(290_000) == pytest.approx(6e-5)
    assert f(200_000) > 6e-5


def test_head_dim_is_a_key_used_by_attention_and_flop_counts():
    base = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=64, block_size=16)
    a, b = ModelConfig(**base), ModelConfig(**base, head_dim=16)
    assert a.head_dim == 8 and b.head_dim == 16 and not b.head_dim_is_default
    ma, mb = GPT(a), GPT(b)
    attn = lambda m: sum(p.numel() for n, p in m.named_parameters() if "proj" in n and ("qkv" in n or "o_proj" in n))
    assert attn(mb) == 2 * attn(ma)                              # q, k, v and o are twice as wide
    assert mb.flops_per_token() > ma.flops_per_token()
    assert mb(torch.zeros(1, 16, dtype=torch.long)).shape == (1, 16, 64)
    # A width that n_head does not divide is fine once head_dim is explicit.
    load_config(None, ["model.n_embd=30", "model.n_head=4", "model.head_dim=8"])


def test_docs_table_equals_the_generated_one():
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    assert splice(text, render()) == text, "run: python -m gptlab.model.presets.table"
    for name in NAMES:
        assert f"#### `{name}`" in text


# ~6 s each: the two recipes that failed at batch 16 before run in the fast subset.
TRAINED = [n if n in ("palm", "bloom") else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


@pytest.mark.parametrize("name", TRAINED)
def test_every_preset_trains_through_run_train_at_batch_16(pack_dir, tmp_path, name, caplog):
    """Each recipe with its own optimizer, schedule, ramp, z-loss and guard. Only the peak LR of
    the AdamW recipes (set for 125M-176B parameters) is raised for a width-32 model, and the
    precision falls back to auto where this CPU has no fast path for the recipe's own."""
    over = [f"model.preset={name}", "model.n_layer=2", "model.n_embd=32", "model.n_head=4",
            "train.batch_size=16", "train.max_steps=30", "train.threads=1", "train.log_every=1000",
            "train.checkpoint_every=30"]
    cfg = load_config(None, over)
    if cfg.train.optimizer == "adamw":
        over.append("train.lr=3e-3")
    if slow_precision_warning(cfg.train.precision, torch.device("cpu")):
        over.append("train.precision=auto")
    cfg = load_config(None, over)
    frag = preset_fragment(name)["train"]
    assert all(getattr(cfg.train, k) == frag[k] for k in ("optimizer", "schedule", "ramp", "z_loss") if k in frag)
    run_train(cfg.model, cfg.train, cfg.stability, pack_dir, tmp_path / name)
    rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 30
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.1, (name, first, last, resolve_precision(cfg.train.precision, torch.device("cpu")))


@pytest.mark.parametrize("preset, arch", [("palm", "CohereForCausalLM"), ("palm_sequential", "LlamaForCausalLM"),
                                          ("llama", "LlamaForCausalLM"), ("gpt3", "GPT2LMHeadModel"),
                                          ("opt", "OPTForCausalLM"), ("bloom", "BloomForCausalLM")])
def test_export_refuses_a_non_default_head_dim_rather_than_write_wrong_heads(preset, arch):
    base = [f"model.preset={preset}", "model.n_layer=2", "model.n_head=4", "model.n_embd=32", "model.vocab_size=64",
            "model.block_size=16"]
    assert pick_adapter(load_config(None, base).model, arch).arch == arch
    assert pick_adapter(load_config(None, base + ["model.head_dim=8"]).model, arch).arch == arch  # = 32/4
    with pytest.raises(ExportRefused, match="model.head_dim=16"):
        pick_adapter(load_config(None, base + ["model.head_dim=16"]).model, arch)
