from pathlib import Path

import pytest

from gptlab.config import ConfigError, RunConfig, from_dict, load_config, to_dict, to_toml


def test_defaults_validate_and_roundtrip_through_toml(tmp_path):
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    p = tmp_path / "c.toml"
    p.write_text(to_toml(cfg))
    again = load_config(p)
    assert to_dict(again) == to_dict(cfg)


def test_toml_then_overrides_win(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[train]\nlr = 0.01\nmax_steps = 7\n[model]\nn_layer = 3\n')
    cfg = load_config(p, ["train.lr=3e-4", "model.n_embd=96", "data.sources=['stdlib-code']"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.max_steps == 7
    assert cfg.model.n_layer == 3 and cfg.model.n_embd == 96
    assert cfg.data.sources == ["stdlib-code"]


@pytest.mark.parametrize("override, needle", [
    ("train.lrr=1", "train.lrr: unknown key"),
    ("nope.x=1", "nope: unknown key"),
    ("train.lr=fast", "train.lr: expected a number"),
    ("train.max_steps=1.5", "train.max_steps: expected an integer"),
    ("train.lr=-1", "train.lr: -1.0 is below the minimum"),
    ("model.norm=batchnorm", "model.norm: 'batchnorm' is not one of"),
    ("data.keep_dropped=3", "data.keep_dropped: expected true or false"),
    ("model.n_embd=130", "model.n_embd: 130 is not divisible"),
    ("noequals", "overrides look like key=value"),
])
def test_bad_values_give_one_line_errors_naming_the_key(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg


def test_int_is_accepted_for_float_fields():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


def test_missing_and_invalid_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_config(bad)


def test_preset_fragment_applies_under_explicit_settings():
    cfg = load_config(None, ["model.preset=llama", "model.mlp=gelu"])
    assert cfg.model.position == "rope"          # from the preset
    assert cfg.model.mlp == "gelu"               # explicit override wins
    with pytest.raises(ConfigError, match="model.preset: unknown preset"):
        load_config(None, ["model.preset=nosuch"])


def test_from_dict_rejects_unknown_sections():
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        from_dict({"bogus": {}})


def test_shipped_config_files_load():
    files = sorted((Path(__file__).parents[1] / "configs").rglob("*.toml"))
    assert files, "configs/ should ship example TOML files"
    for f in files:
        if f.parent.name in ("data", "ablate"):
            continue  # data recipes and ablation files have their own schemas (tests/data, tests/lab)
        load_config(f)
