"""`gptlab selftest faults --quick --only checkpoints`: every bad count of the section is 0."""
from __future__ import annotations

import pytest

from gptlab.selftest.command import run_faults


@pytest.mark.slow
def test_checkpoints_quick_has_no_bad_counts(tmp_path_factory):
    # One folder per session for every section: they share the tiny chain they attack (built once).
    rows = run_faults(tmp_path_factory.getbasetemp() / "selftest-faults", quick=True, only=["checkpoints"])
    assert rows, "the section reported nothing"
    bad = {f"{r.check}: {r.bad} {r.bad_what}": r.failures[:3] for r in rows if r.bad}
    assert not bad, bad
    assert all(r.cases > 0 for r in rows if not r.note.startswith("skipped")), [r.check for r in rows if not r.cases]
