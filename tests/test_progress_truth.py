"""Progress bars tell the truth (issue 13, item 12): a real total, reached at the end."""
from __future__ import annotations

from contextlib import contextmanager

from rich.progress import Progress

from gptlab import tokenizer as tokenizer_mod
from gptlab.data import classifier
from gptlab.tokenizer.config import TokenizerConfig


def test_tokenizer_bar_has_a_total_and_reaches_it(curated, tmp_path, monkeypatch):
    made: list[Progress] = []
    monkeypatch.setattr(tokenizer_mod, "make_progress", lambda: made.append(Progress(disable=True)) or made[-1])
    tokenizer_mod.run_tokenizer(TokenizerConfig(vocab_size=300), curated, tmp_path / "tok")
    (task,) = made[0].tasks
    assert task.total is not None and task.total > 0          # not "0/?"
    assert task.completed == task.total


def test_classifier_fit_shows_one_step_per_fit(monkeypatch):
    seen = []

    @contextmanager
    def fake(description, total):
        done = []
        yield lambda n=1, info=None: done.append(n)
        seen.append((description, total, sum(done)))
    monkeypatch.setattr(classifier, "progress_task", fake)
    pos = [f"the quiet river runs by the old stone bridge {i}" for i in range(10)]
    neg = [f"buy cheap now click here best price {i}" for i in range(10)]
    classifier.cross_fit_quality_model(pos, neg, [str(i) for i in range(10)], folds=3, n_features=2**10)
    assert seen == [("classifier fit", 4, 4)]
