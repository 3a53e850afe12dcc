"""Every recipe preset runs through `gptlab demo --size tiny model.preset=NAME` with its own
optimizer, schedule, batch ramp, z-loss and stability guard. The only override is the
precision, where this machine has no fast path for the recipe's own: gptlab says what it used."""
from __future__ import annotations

import shutil

import pytest
import torch

from gptlab import cli
from gptlab.config import load_config
from gptlab.device import resolve_precision, slow_precision_warning
from gptlab.manifest import read_manifest
from gptlab.model.presets import RECIPES
from gptlab.pipeline import demo_preset

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_preset_runs_through_the_tiny_demo(name, tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("train", "eval", "report*"))
    assert cli.main(["demo", "--size", "tiny", "--out", str(run), f"model.preset={name}"]) == 0
    err = capsys.readouterr().err
    expected = load_config(None, [f"model.preset={name}"], fragments=[demo_preset("tiny")])
    train = read_manifest(run / "train")
    assert train["complete"] and "stopped" not in train["summary"]
    saved = train["config"]["train"]
    for key in ("optimizer", "schedule", "ramp", "z_loss", "precision"):
        assert saved[key] == getattr(expected.train, key), (name, key)
    assert train["config"]["stability"]["enabled"]
    # The recipe's precision, unless this CPU has no fast path for it: then fp32, and it says so.
    want = resolve_precision(expected.train.precision, torch.device("cpu"))
    if slow_precision_warning(want, torch.device("cpu")):
        assert train["summary"]["precision"] == "fp32" and "training in fp32 instead" in err
    else:
        assert train["summary"]["precision"] == want
    assert train["summary"]["final_loss"] < train["summary"]["first_loss"] - 0.5
    assert read_manifest(run / "eval")["complete"]
