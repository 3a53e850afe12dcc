"""Named recipe presets: plain functions returning RunConfig fragments ({"model": ..., "train": ...}).

A recipe declares its architecture *and* the training defaults its paper used (optimizer,
schedule, precision, batch ramp, z-loss), for the training engine to consume. Anything set
in a config file or on the command line wins over the preset. Presets compose with ``+``,
later parts winning: ``model.preset=palm+1.3b`` is PaLM's recipe at GPT-3's 1.3B size.

Sources are cited per line: "Brown 2020" = GPT-3 paper (App. B, Table 2.1); "Zhang 2022" =
OPT paper; "BLOOM slurm" = bigscience tr11-176B-ml.slurm; "Chowdhery 2022" = PaLM paper;
"Zeng 2022" = GLM-130B paper; "Wang 2022" = DeepNet paper. Each recipe is a list of
(section, key, value, source) rows (``rows.py``); docs/models.md prints them (``table.py``).
Ramps, warmup and decay are fractions of the user's run, so a recipe runs at any scale.
"""
from __future__ import annotations

from typing import Any, Callable

from gptlab.model.presets.bloom import bloom
from gptlab.model.presets.glm import glm
from gptlab.model.presets.gpt3 import GPT3_CONTEXT, GPT3_SIZES, gpt3, gpt3_sized, size_fragment
from gptlab.model.presets.nanogpt import llama, nanogpt
from gptlab.model.presets.opt import opt
from gptlab.model.presets.palm import palm, palm_sequential
from gptlab.schema import ConfigError, merge

__all__ = ["EXPORT_TARGETS", "GPT3_CONTEXT", "GPT3_SIZES", "PRESETS", "RECIPES", "preset_fragment", "under"]

# Export targets per recipe, for docs and `gptlab export` messages (see gptlab.interop).
EXPORT_TARGETS = {
    "nanogpt": "GPT2LMHeadModel", "gpt3": "GPT2LMHeadModel", "opt": "OPTForCausalLM",
    "bloom": "BloomForCausalLM", "llama": "LlamaForCausalLM", "palm": "CohereForCausalLM",
    "palm_sequential": "LlamaForCausalLM", "glm": None,
}



RECIPES: dict[str, Callable[[], dict[str, Any]]] = {
    "nanogpt": nanogpt, "llama": llama, "gpt3": gpt3, "opt": opt, "bloom": bloom,
    "palm": palm, "palm_sequential": palm_sequential, "glm": glm,
}
PRESETS: dict[str, Callable[[], dict[str, Any]]] = dict(RECIPES)
PRESETS.update({size: (lambda s=size: size_fragment(s)) for size in GPT3_SIZES})
# gpt3-125m ... gpt3-175b: GPT-3's recipe at each size of its paper.
PRESETS.update({f"gpt3-{size}": (lambda s=size: gpt3_sized(s)) for size in GPT3_SIZES})




def preset_fragment(name: str) -> dict[str, Any]:
    """The RunConfig fragment of ``name``; ``a+b`` merges b over a."""
    frag: dict[str, Any] = {}
    for part in str(name).split("+"):
        part = part.strip()
        if part not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {part!r} (known: {', '.join(PRESETS)})")
        frag = merge(frag, PRESETS[part]())
    return frag


# A preset states ramps and warmup as fractions of the run; a user who sets the absolute twin
# (train.warmup_steps=10) means it, so that key drops the preset's fraction.
FRACTION_TWINS = {"warmup_steps": "warmup_fraction", "ramp_start_batch": "ramp_start_fraction",
                  "ramp_tokens": "ramp_fraction", "ramp_steps": "ramp_step_fractions",
                  "ramp_batches": "ramp_batch_fractions"}


def under(frag: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` merged over the preset ``frag``, an absolute key in ``data`` replacing the
    preset's fraction for it."""
    user_train = data.get("train", {}) if isinstance(data.get("train"), dict) else {}
    train = {k: v for k, v in frag.get("train", {}).items()
             if not any(k == twin and key in user_train for key, twin in FRACTION_TWINS.items())}
    return merge({**frag, "train": train}, data)
