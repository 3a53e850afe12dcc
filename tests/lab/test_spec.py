"""Ablation files: arms are ordinary config overrides; mistakes are one-line errors naming the file."""
from __future__ import annotations

from pathlib import Path

import pytest

from gptlab.data.recipe import load_recipe
from gptlab.errors import ConfigError
from gptlab.lab.spec import load_ablation
from gptlab.pipeline import demo_preset

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "ablate"

GOOD = """
[ablation]
baseline = "a"
[common]
train.lr = 1e-2
[arms.a]
model.mlp = "gelu"
[arms.b]
model.mlp = "relu"
model.n_layer = 3
[[claims]]
arm = "b"
metric = "final_loss"
direction = "higher"
min_effect = 0.01
"""


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "ab.toml"
    p.write_text(text)
    return p


def test_any_config_key_can_be_an_arm(tmp_path):
    ab = load_ablation(_write(tmp_path, GOOD), demo_preset("tiny"))
    b = ab.resolve("b", demo_preset("tiny"), seed=7)
    assert (b.model.mlp, b.model.n_layer, b.train.lr, b.train.seed) == ("relu", 3, 1e-2, 7)
    a = ab.resolve("a", demo_preset("tiny"))
    assert (a.model.mlp, a.model.n_layer) == ("gelu", 2)       # the tiny demo's depth
    assert ab.claims[0].id == "claim1" and ab.baseline == "a"


def test_common_settings_win_over_a_recipe_preset(tmp_path):
    text = GOOD.replace('model.mlp = "relu"', 'model.preset = "palm"').replace('train.lr = 1e-2',
                                                                             'train.lr = 1e-2\ntrain.ramp = "none"')
    ab = load_ablation(_write(tmp_path, text), demo_preset("tiny"))
    b = ab.resolve("b", demo_preset("tiny"))
    assert b.model.mlp == "swiglu" and b.train.optimizer == "adafactor"      # the recipe
    assert b.train.lr == 1e-2 and b.train.ramp == "none" and b.train.batch_size == 16   # ours


@pytest.mark.parametrize("edit, message", [
    (('model.n_layer = 3', 'model.n_layers = 3'), "arm 'b'"),
    (('metric = "final_loss"', 'metric = "accuracy"'), "metric 'accuracy'"),
    (('direction = "higher"', 'direction = "up"'), "direction 'up'"),
    (('arm = "b"', 'arm = "a"'), "non-baseline"),
    (('baseline = "a"', 'baseline = "z"'), "baseline 'z'"),
    (('[common]', '[data]\nrecipe = "x"\n[common]'), "unknown table [data]"),
    (('train.lr = 1e-2', 'data.recipe = "nowhere.toml"'), "no such file beside the ablation file"),
    (('model.n_layer = 3', 'model.n_layer = 3\ndata.max_docs_per_source = 7'), "arms differ in harvest settings"),
    (('baseline = "a"', 'baseline = "a"\nplant_repeats = -1'), "plant_repeats"),
    (('arm = "b"', 'arm = "b"\nbaseline = "q"'), "baseline 'q' is not an arm"),
    (('arm = "b"', 'arm = "b"\nbaseline = "b"'), "non-baseline"),
])
def test_mistakes_are_one_line_errors_naming_the_file(tmp_path, edit, message):
    p = _write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError, match="ab.toml") as e:
        load_ablation(p, demo_preset("tiny"))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_one_arm_is_not_an_ablation(tmp_path):
    with pytest.raises(ConfigError, match="at least two arms"):
        load_ablation(_write(tmp_path, "[ablation]\n[arms.a]\ntrain.lr = 1e-3\n"))


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_every_shipped_ablation_resolves_with_equal_budgets(path, size):
    ab = load_ablation(path, demo_preset(size))
    budgets = {(c.train.max_steps, c.train.batch_size, c.train.ramp)
               for c in (ab.resolve(a, demo_preset(size)) for a in ab.arms)}
    if {c.metric for c in ab.claims} == {"loss_at_equal_tokens"}:
        budgets = {b[:2] for b in budgets}        # a ramp trains fewer tokens: judged at equal tokens
    assert len(budgets) == 1, budgets
    assert ab.claims, "an ablation without a claim decides nothing"


def test_a_data_ablation_names_recipes_beside_its_file_and_may_choose_sources(tmp_path):
    (tmp_path / "r.toml").write_text('description = "x"\n[[steps]]\ntype = "normalize"\n')
    text = GOOD.replace('model.n_layer = 3', 'data.recipe = "r.toml"\ndata.sources = ["bible"]')
    ab = load_ablation(_write(tmp_path, text), demo_preset("tiny"))
    assert ab.sets_data() and not load_ablation(_write(tmp_path, GOOD)).sets_data()
    b = ab.resolve("b", demo_preset("tiny"))
    assert Path(b.data.recipe) == (tmp_path / "r.toml").resolve() and b.data.sources == ["bible"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_data_arm_has_its_classifiers_reference_sources(path):
    """A classifier trained on the input's reference sources cannot run on an arm without them."""
    ab = load_ablation(path, demo_preset("tiny"))
    for arm in ab.arms:
        cfg = ab.resolve(arm, demo_preset("tiny"))
        for step in load_recipe(cfg.data.recipe).steps:
            refs = getattr(step.params, "reference_sources", None) if step.type == "classifier" else None
            if refs and getattr(step.params, "reference", "") == "input":
                assert set(refs) <= set(cfg.data.sources), (arm, refs)
