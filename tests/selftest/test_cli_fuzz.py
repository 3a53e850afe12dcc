"""The 'cli' fault section, quick grid: fuzzed flags, overrides and TOML files, no tracebacks."""
from __future__ import annotations

import pytest

from gptlab.selftest import cli as fuzz
from gptlab.selftest.table import Context


def test_the_walk_finds_every_subcommand():
    paths = {c.path for c in fuzz.walk(fuzz._cli().build_parser())}
    for p in [("demo",), ("data", "curate"), ("data", "classifier", "train"), ("train",), ("eval",), ("export",),
              ("advise",), ("advise", "bakeoff"), ("generate",), ("plan",), ("selftest", "faults")]:
        assert p in paths


@pytest.mark.parametrize("stderr,rc,ok", [
    ("gptlab: error: --workers 0: must be >= 1\n", 2, True),
    ("usage: gptlab train ...\ngptlab train: error: the following arguments are required: --out\n", 2, True),
    ("12:00:00 INFO something\n", 0, True),
    ("gptlab: internal error (this is a bug in gptlab): ValueError: x\n", 1, False),
    ("Traceback (most recent call last):\n  File ...\nValueError: x\n", 2, False),
    ("gptlab: error: two\nlines\n", 2, False),
    ("", 2, False),
])
def test_the_verdict_separates_one_line_errors_from_crashes(stderr, rc, ok):
    assert (fuzz.verdict(fuzz.Result(rc, stderr, 0.0)) is None) == ok


def test_a_forked_case_reports_the_real_exit_code_and_stderr(tmp_path):
    r = fuzz.run_forked(["data", "curate", "--input", str(tmp_path / "missing"), "--out", "o"], tmp_path, 60)
    assert r.rc == 2 and "gptlab: error:" in r.stderr and "missing" in r.stderr


@pytest.mark.slow
def test_quick_cli_fuzz_has_no_traceback(tmp_path):
    rows = fuzz.run(Context(work=tmp_path, quick=True, seed=0))
    assert sum(r.cases for r in rows) >= 200
    for r in rows:
        assert r.bad == 0, (r.check, r.failures)
