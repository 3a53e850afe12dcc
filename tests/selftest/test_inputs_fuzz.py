"""The 'inputs' fault section, quick grid: hypothesis fuzzing of every reader and step."""
from __future__ import annotations

import pytest

from gptlab.data import readers
from gptlab.selftest import inputs
from gptlab.selftest.table import Context


@pytest.mark.slow
def test_quick_fuzz_of_readers_and_steps_has_no_crash_and_accounts_for_every_record(tmp_path):
    rows = inputs.run(Context(work=tmp_path, quick=True, seed=0))
    checks = {r.check: r for r in rows}
    assert "in = kept + dropped + quarantined" in checks and "curate a folder of fuzzed files" in checks
    assert sum(r.cases for r in rows if r.check.startswith("reader ")) >= 200
    for r in rows:
        assert r.bad == 0, (r.check, r.failures)
        assert r.cases > 0


def test_a_reader_crash_is_counted_not_raised(tmp_path, monkeypatch):
    """The harness must be able to fail: a reader that raises is a counted crash."""
    def boom(shard, max_bytes):
        raise RuntimeError("reader bug")
        yield

    monkeypatch.setitem(readers.READERS, "jsonl", boom)
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    tally = inputs.Tally()
    inputs.check_file(tmp_path / "a.jsonl", tmp_path / "run", inputs._specs(),
                      inputs._tiny_classifier(tmp_path / "clf"), tally)
    assert tally.crashes == 1 and "RuntimeError: reader bug" in tally.failures[0]
