"""train.compile=true: torch.compile of the model trains the same as eager (CPU inductor)."""
import json
from pathlib import Path

import pytest

from gptlab.config import load_config
from gptlab.train.loop import run_train

TINY = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=4", "train.threads=1",
        "train.log_every=1000", "train.warmup_steps=1", "train.max_steps=3", "train.checkpoint_every=3",
        "train.precision=fp32", "stability.enabled=false"]


def _losses(pack, out, extra=()):
    cfg = load_config(None, TINY + list(extra))
    summary = run_train(cfg.model, cfg.train, cfg.stability, pack, out)
    return summary, [json.loads(line)["loss"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_compiled_training_matches_eager(pack_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    _, eager = _losses(pack_dir, tmp_path / "eager")
    summary, compiled = _losses(pack_dir, tmp_path / "compiled", ["train.compile=true"])
    assert summary["steps"] == 3 and len(compiled) == 3
    # Fused kernels sum in another order: equal to float tolerance, not bitwise.
    assert compiled == pytest.approx(eager, abs=1e-4)
