"""Recipe presets: each loads as a valid RunConfig, builds, and learns on CPU."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gptlab
from gptlab.config import ConfigError, load_config
from gptlab.model import GPT
from gptlab.model.presets import GPT3_SIZES, PRESETS, RECIPES, preset_fragment
from gptlab.train.loop import run_train

TINY = ["model.n_layer=2", "model.n_head=4", "model.n_embd=32", "model.vocab_size=64", "model.block_size=32"]


def counting_batch(gen: torch.Generator, B: int = 8, T: int = 32, V: int = 64) -> torch.Tensor:
    """Random starts, then +1 mod V (with a random stride per row): learnable, never memorised."""
    start = torch.randint(0, V, (B, 1), generator=gen)
    stride = torch.randint(1, 4, (B, 1), generator=gen)
    return (start + stride * torch.arange(T + 1)) % V


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_trains_with_falling_loss(name):
    cfg = load_config(None, [f"model.preset={name}", *TINY])
    torch.manual_seed(0)
    model = GPT(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        seq = counting_batch(gen)
        logits = model(seq[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 64), seq[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, f"{name}: loss {first:.3f} -> {last:.3f}"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_declares_its_training_defaults(name):
    cfg = load_config(None, [f"model.preset={name}"])
    frag = preset_fragment(name)
    for key, value in frag.get("train", {}).items():
        assert getattr(cfg.train, key) == value
    if name in ("gpt3", "opt", "bloom", "palm", "glm"):
        assert {"optimizer", "schedule", "precision", "ramp", "z_loss"} <= set(frag["train"])


def test_recipes_carry_their_architecture():
    c = lambda n: load_config(None, [f"model.preset={n}"]).model
    assert (c("opt").mlp, c("opt").position, c("opt").init) == ("relu", "learned", "opt")
    assert (c("bloom").position, c("bloom").embed_norm, c("bloom").init) == ("alibi", True, "bloom")
    p = c("palm")
    assert (p.block, p.mlp, p.position, p.n_kv_head, p.bias, p.norm_bias, p.tie_embeddings, p.logit_scale,
            p.init) == ("parallel", "swiglu", "rope", 1, False, False, True, "rsqrt_d", "palm")
    g = c("glm")
    assert (g.placement, g.deepnorm, g.embed_grad_scale) == ("deepnorm", "glm", 0.1)
    assert c("gpt3").init == "gpt2"


def test_user_settings_win_over_the_preset():
    cfg = load_config(None, ["model.preset=palm", "model.block=sequential", "train.lr=1e-3"])
    assert cfg.model.block == "sequential" and cfg.train.lr == 1e-3 and cfg.model.mlp == "swiglu"


@pytest.mark.parametrize("size, billions", [("125m", 0.125), ("350m", 0.35), ("1.3b", 1.3), ("13b", 13),
                                            ("175b", 175)])
def test_gpt3_size_table(size, billions):
    cfg = load_config(None, [f"model.preset=gpt3-{size}", "model.vocab_size=50257"])
    assert cfg.model.block_size == 2048 and cfg.train.lr == GPT3_SIZES[size][4]
    with torch.device("meta"):
        n = sum(p.numel() for p in GPT(cfg.model).parameters())
    assert n / 1e9 == pytest.approx(billions, rel=0.1)


def test_presets_compose_and_sizes_keep_the_recipe_optimizer():
    cfg = load_config(None, ["model.preset=palm+1.3b"])
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.block) == (24, 2048, "parallel")
    assert cfg.train.lr == 1e-2 and cfg.train.optimizer == "adafactor"
    assert "gpt3-175b" in PRESETS and "175b" in PRESETS


def test_unknown_preset_is_a_one_line_error():
    with pytest.raises(ConfigError, match="model.preset: unknown preset 'palm2'"):
        load_config(None, ["model.preset=palm2"])


def test_a_preset_trains_through_the_trainer_and_reloads(pack_dir, tmp_path):
    """The real trainer on real packed data (the tiny demo's sizes), with a recipe that uses every new module kind."""
    cfg = load_config(None, ["model.preset=bloom", "model.n_layer=2", "model.n_head=2", "model.n_embd=64",
                             "train.max_steps=30", "train.batch_size=8", "train.lr=3e-3", "train.warmup_steps=3",
                             "train.precision=fp32", "train.ramp=none", "train.checkpoint_every=30",
                             "train.log_every=10"])
    summary = run_train(cfg.model, cfg.train, cfg.stability, pack_dir, tmp_path / "train")
    assert summary["final_loss"] < summary["first_loss"]
    model = gptlab.load_model(tmp_path / "train")
    assert model.config.position == "alibi" and model.config.embed_norm
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    assert model(ids).shape == (2, 16, model.config.vocab_size)
