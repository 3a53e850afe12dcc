"""The report's loss curve: the kept trajectory vs the stretches a rollback abandoned, and
the periodic held-out bpb overlaid."""
import json

import matplotlib.pyplot as plt
import pytest

from gptlab.report import plots
from gptlab.report.plots import kept_and_abandoned, loss_curve, trajectories


def rec(step, epoch, loss=3.0, **kw):
    return {"step": step, "rollback_epoch": epoch, "loss": loss, **kw}


# Two rollbacks: epoch 0 ran to 8 and went back to 4; epoch 1 ran to 7 and went back to 2.
ROWS = ([rec(s, 0) for s in range(1, 9)] + [rec(s, 1) for s in range(5, 8)]
        + [rec(s, 2, eval_bpb=2.0 if s % 4 == 0 else None) for s in range(3, 11)])


def test_the_kept_trajectory_holds_each_step_once_from_its_last_attempt():
    assert [len(t) for t in trajectories(ROWS)] == [8, 3, 8]
    kept, abandoned = kept_and_abandoned(ROWS)
    assert [(r["rollback_epoch"], r["step"]) for r in kept] == [(0, 1), (0, 2)] + [(2, s) for s in range(3, 11)]
    # Epoch 1 is abandoned whole (epoch 2 went back before it), and so are epoch 0's steps 3..8.
    assert sorted((r["rollback_epoch"], r["step"]) for r in abandoned) == (
        [(0, s) for s in range(3, 9)] + [(1, s) for s in range(5, 8)])


def test_files_without_rollback_epochs_split_where_the_step_goes_back():
    old = [{"step": s, "loss": 1.0} for s in (1, 2, 3, 4, 2, 3, 4, 5)]
    kept, abandoned = kept_and_abandoned(old)
    assert [r["step"] for r in kept] == [1, 2, 3, 4, 5] and [r["step"] for r in abandoned] == [2, 3, 4]


def test_loss_curve_draws_kept_abandoned_and_heldout_bpb(tmp_path, monkeypatch):
    rows = [{k: v for k, v in r.items() if v is not None} for r in ROWS]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn: dict[str, list] = {}
    real_save = plots._save

    def spy(fig, path):
        for ax in fig.axes:
            for line in ax.get_lines():
                drawn.setdefault(str(line.get_color()), []).extend(int(x) for x in line.get_xdata())
        return real_save(fig, path)
    monkeypatch.setattr(plots, "_save", spy)
    out = loss_curve(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    assert out.stat().st_size > 0
    assert drawn["tab:green"] == [4, 8]                           # held-out bpb, kept steps only
    assert sorted(drawn["tab:blue"]) == list(range(1, 11))          # the kept trajectory
    assert sorted(drawn["0.6"]) == sorted([*range(3, 9), *range(5, 8)])   # abandoned, in grey
    plt.close("all")


@pytest.mark.parametrize("rows", [[rec(1, 0), rec(2, 0)]])
def test_a_run_without_rollbacks_has_nothing_abandoned(rows):
    assert kept_and_abandoned(rows) == (rows, [])
