"""loss_at_equal_tokens (C11): runs that train different tokens in the same steps are compared
where all of them have seen as many tokens."""
import json

import pytest

from gptlab.lab.runner import equal_tokens_loss


def _metrics(folder, batches, losses):
    (folder / "train").mkdir(parents=True)
    rows = [{"step": i + 1, "loss": loss, "batch_size": b} for i, (b, loss) in enumerate(zip(batches, losses))]
    (folder / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_losses_are_read_at_the_fewest_tokens_any_run_trained(tmp_path):
    _metrics(tmp_path / "full", [4] * 6, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])        # 4 sequences a step: 24
    _metrics(tmp_path / "ramp", [1, 1, 2, 2, 4, 4], [6.5, 6.0, 5.5, 5.0, 4.5, 4.0])   # 14 sequences in all
    jobs = [{"dir": str(tmp_path / n), "config": {"pack": {"seq_len": 10}}} for n in ("full", "ramp")]
    runs = [{}, {}]
    equal_tokens_loss(tmp_path, runs, jobs, last=2)
    assert runs[0]["equal_tokens"] == runs[1]["equal_tokens"] == 140
    # full: 40, 80, 120 tokens by step 3 (160 > 140): the last two at or below are steps 2 and 3
    assert runs[0]["loss_at_equal_tokens"] == pytest.approx((5.0 + 4.0) / 2)
    # ramp: every step is within its own 140 tokens: steps 5 and 6
    assert runs[1]["loss_at_equal_tokens"] == pytest.approx((4.5 + 4.0) / 2)
