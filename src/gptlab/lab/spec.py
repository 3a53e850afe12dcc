"""Ablation files: a baseline, its arms as config overrides, and the claims they test.

    [ablation]
    name = "z-loss"
    baseline = "off"          # the arm every claim is measured against
    seeds = 3                 # default for --seeds
    size = "tiny"             # default for --size: the demo size whose data, tokenizer and pack all arms share

    [common]                  # overrides every arm gets (any config key, TOML dotted keys or tables)
    train.lr = 3e-2

    [arms.off]
    train.z_loss = 0.0
    [arms.on]
    train.z_loss = 1e-4

    [[claims]]
    id = "C6"
    claim = "z-loss stabilises"
    arm = "on"
    metric = "final_loss"     # see METRICS
    direction = "lower"       # what the post predicts for arm - baseline
    min_effect = 0.01         # the smallest difference that counts, in the metric's units
    # baseline = "other-arm"  # optional: compare against another arm than the ablation's baseline

An arm is an ordinary config fragment, merged over the demo size's settings and ``[common]``,
so any key the config knows may be ablated; nothing is special-cased. Every arm's config is
resolved and validated when the file is read, so a typo fails before any training.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.config import RunConfig, load_config
from gptlab.errors import ConfigError
from gptlab.lab.data import check_harvest
from gptlab.schema import merge

# What a claim can be judged on, per (arm, seed) run: name → meaning (units).
METRICS = {
    "final_loss": "mean training loss over the last logged steps (nats)",
    "bpb": "held-out bits per byte, overall (the shared evaluation set)",
    "max_logit": "largest logit seen on a logged step",
    "spikes": "loss or gradient spikes the stability guard detected",
    "rollbacks": "rollbacks the stability guard made",
    "skipped_batches": "batches the guard skipped after rollbacks",
    "overflow_skips": "steps the fp16 loss scaler skipped (gradients overflowed)",
    "diverged": "1 when the run diverged (loss not finite, the guard gave up, or final loss above the first), else 0",
    "tokens_per_s": "training throughput (tokens/s)",
    "bpb_domain_mean": "held-out bpb per domain, averaged with every domain weighted alike",
    "bpb_repeated": "bpb on training documents repeated >= 3 times in the raw pool (data ablations' probe)",
    "bpb_once": "bpb on training documents that occur once in the raw pool (data ablations' probe)",
    "memorisation": "bpb_once - bpb_repeated: how much better repeated documents are predicted than unique ones",
    "bpb_1x": "held-out bpb with windows of the training length (seq_len)",
    "bpb_2x": "held-out bpb with windows of twice the training length (learned rows beyond it: untrained)",
    "loss_at_equal_tokens": "training loss at the fewest tokens any run of the ablation trained on",
}
# The sections of a data ablation: an arm setting any of them gets its own curate → tokenizer →
# pack chain (gptlab.lab.data), evaluated on a held-out set drawn before curation.
DATA_SECTIONS = ("data", "tokenizer", "pack")


@dataclass
class Claim:
    id: str
    claim: str
    arm: str
    metric: str
    direction: str
    min_effect: float
    baseline: str = ""        # the arm this claim compares against ("" = the ablation's baseline)


@dataclass
class Ablation:
    name: str
    path: Path
    baseline: str
    arms: dict[str, dict[str, Any]]          # arm → its override fragment (as written)
    common: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    seeds: int = 3
    size: str = "tiny"
    description: str = ""
    planned: str = ""                         # what the file cannot run yet, said in the report
    heldout_sources: list[str] = field(default_factory=list)   # data ablations: the evaluation set's sources
    plant_repeats: int = 0                    # data ablations: extra copies of the memorisation probe's documents

    def sets_data(self) -> bool:
        return any(s in frag for frag in [self.common, *self.arms.values()] for s in DATA_SECTIONS)

    def fragments(self, arm: str, size_preset: dict[str, Any]) -> list[dict[str, Any]]:
        return [size_preset, self.common, self.arms[arm]]

    def resolve(self, arm: str, size_preset: dict[str, Any], seed: int | None = None) -> RunConfig:
        """The arm's full config: demo size ← [common] ← the arm (← the seed)."""
        frags = self.fragments(arm, size_preset)
        if seed is not None:
            frags = [*frags, {"train": {"seed": seed}}]
        try:
            return load_config(None, [], fragments=[merge({}, f) for f in frags])
        except ConfigError as e:
            raise ConfigError(f"{self.path}: arm {arm!r}: {e}") from None


def _table(data: dict, key: str, where: Path, required: bool = True) -> dict:
    value = data.get(key, {} if not required else None)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table" + (" (it is missing)" if value is None else ""))
    return value


def _claim(raw: Any, i: int, arms: dict, baseline: str, where: Path) -> Claim:
    at = f"{where}: claims[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at}: must be a table ([[claims]])")
    missing = [k for k in ("arm", "metric", "direction", "min_effect") if k not in raw]
    if missing:
        raise ConfigError(f"{at}: missing {', '.join(missing)}")
    unknown = sorted(set(raw) - {"id", "claim", "arm", "metric", "direction", "min_effect", "baseline"})
    if unknown:
        raise ConfigError(f"{at}: unknown key {unknown[0]!r}")
    ref = raw.get("baseline", baseline)
    if ref not in arms:
        raise ConfigError(f"{at}: baseline {ref!r} is not an arm ({', '.join(arms)})")
    if raw["arm"] not in arms or raw["arm"] == ref:
        raise ConfigError(f"{at}: arm {raw['arm']!r} is not one of the non-baseline arms "
                          f"({', '.join(a for a in arms if a != ref)})")
    if raw["metric"] not in METRICS:
        raise ConfigError(f"{at}: metric {raw['metric']!r} is not one of {', '.join(METRICS)}")
    if raw["direction"] not in ("lower", "higher"):
        raise ConfigError(f"{at}: direction {raw['direction']!r} is not 'lower' or 'higher'")
    try:
        min_effect = float(raw["min_effect"])
    except (TypeError, ValueError):
        raise ConfigError(f"{at}: min_effect {raw['min_effect']!r} is not a number") from None
    if min_effect < 0:
        raise ConfigError(f"{at}: min_effect must be >= 0")
    return Claim(str(raw.get("id", f"claim{i + 1}")), str(raw.get("claim", "")), raw["arm"], raw["metric"],
                 raw["direction"], min_effect, "" if ref == baseline else ref)


def _resolve_recipe(frag: dict[str, Any], path: Path) -> None:
    """A recipe file named relative to the ablation file (data.recipe = "data/c1-rules.toml")."""
    data = frag.get("data")
    recipe = data.get("recipe") if isinstance(data, dict) else None
    if isinstance(recipe, str) and recipe.endswith(".toml") and not Path(recipe).is_absolute():
        beside = path.parent / recipe
        if beside.exists():
            data["recipe"] = str(beside.resolve())
        elif not Path(recipe).exists():
            raise ConfigError(f"{path}: data.recipe {recipe!r}: no such file beside the ablation file")


def load_ablation(path: str | Path, size_preset: dict[str, Any] | None = None) -> Ablation:
    """Read and check an ablation file; with ``size_preset``, also resolve every arm's config."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such ablation file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    unknown = sorted(set(data) - {"ablation", "common", "arms", "claims"})
    if unknown:
        raise ConfigError(f"{path}: unknown table [{unknown[0]}] (expected ablation, common, arms, claims)")
    head = _table(data, "ablation", path)
    arms = _table(data, "arms", path)
    if len(arms) < 2:
        raise ConfigError(f"{path}: [arms] needs at least two arms, found {len(arms)}")
    for name, frag in arms.items():
        if not isinstance(frag, dict):
            raise ConfigError(f"{path}: arms.{name} must be a table of config overrides")
    common = _table(data, "common", path, required=False)
    baseline = head.get("baseline", next(iter(arms)))
    if baseline not in arms:
        raise ConfigError(f"{path}: ablation.baseline {baseline!r} is not an arm ({', '.join(arms)})")
    raw_claims = data.get("claims", [])
    if not isinstance(raw_claims, list):
        raise ConfigError(f"{path}: claims must be an array of tables ([[claims]])")
    claims = [_claim(c, i, arms, baseline, path) for i, c in enumerate(raw_claims)]
    seeds = head.get("seeds", 3)
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{path}: ablation.seeds must be a whole number >= 1, got {seeds!r}")
    ab = Ablation(name=str(head.get("name", path.stem)), path=path, baseline=baseline, arms=arms, common=common,
                  claims=claims, seeds=seeds, size=str(head.get("size", "tiny")),
                  description=str(head.get("description", "")), planned=str(head.get("planned", "")))
    heldout_sources = head.get("heldout_sources", [])
    if not isinstance(heldout_sources, list) or not all(isinstance(x, str) for x in heldout_sources):
        raise ConfigError(f"{path}: ablation.heldout_sources must be a list of source names")
    ab.heldout_sources = heldout_sources
    plant = head.get("plant_repeats", 0)
    if not isinstance(plant, int) or isinstance(plant, bool) or not 0 <= plant <= 1000:
        raise ConfigError(f"{path}: ablation.plant_repeats must be a whole number from 0 to 1000, got {plant!r}")
    ab.plant_repeats = plant
    for frag in [common, *arms.values()]:
        _resolve_recipe(frag, path)
    if size_preset is not None:
        cfgs = {arm: ab.resolve(arm, size_preset) for arm in arms}
        if ab.sets_data():
            check_harvest(cfgs, path)
    return ab
