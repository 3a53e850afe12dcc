import numpy as np
import pytest
import torch

from gptlab.data.pack import PackedData
from gptlab.train.batches import Batches


class Fake:
    seq_len = 4

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def sequences(self, idx):
        return np.repeat(np.asarray(idx)[:, None], 5, axis=1)


def test_batch_is_a_pure_function_of_step():
    b1, b2 = Batches(Fake(10), 4, seed=0), Batches(Fake(10), 4, seed=0)
    assert list(b1.indices(0)) == [0, 1, 2, 3]
    # Wrapping into epoch 1 re-permutes deterministically, and order of calls does not matter.
    later = b1.indices(7)
    b2.indices(0)
    assert list(b2.indices(7)) == list(later)
    epoch1 = np.concatenate([b1.indices(s) for s in range(10, 15)])[:10]  # positions 40..49
    assert sorted(epoch1 % 10) == list(range(10))
    x, y = b1.get(0)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_checkpoint_roundtrip_and_corruption_is_skipped(tmp_path):
    from gptlab.config import load_config, to_dict
    from gptlab.model import GPT
    from gptlab.train.checkpoint import latest_valid, load_checkpoint, save_checkpoint
    from gptlab.train.optim import build_optimizer
    cfg = load_config(None, ["model.n_layer=1", "model.n_embd=16", "model.n_head=2",
                             "model.vocab_size=50", "model.block_size=8"])
    torch.manual_seed(0)
    model = GPT(cfg.model)
    opt = build_optimizer(model, cfg.train)
    model(torch.randint(0, 50, (2, 8))).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, 1, model, opt, to_dict(cfg))
    save_checkpoint(tmp_path, 2, model, opt, to_dict(cfg))
    save_checkpoint(tmp_path, 3, model, opt, to_dict(cfg), keep=2)
    names = [p.name for p in sorted(tmp_path.iterdir())]
    assert names == ["step-00000002", "step-00000003"]
    # Truncate the newest: it must be reported and skipped.
    f = tmp_path / "step-00000003" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    seen = []
    assert latest_valid(tmp_path, log=seen.append).name == "step-00000002"
    assert "step-00000003" in seen[0] and "unusable" in seen[0]
    m2 = GPT(cfg.model)
    o2 = build_optimizer(m2, cfg.train)
    state = load_checkpoint(tmp_path / "step-00000002", m2, o2)
    assert state["step"] == 2
    for a, b in zip(model.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_training_loss_falls_in_the_tiny_run(tiny_run):
    import json
    rows = [json.loads(l) for l in (tiny_run / "train" / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert first - last > 0.5, (first, last)
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(rows[-1])
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
