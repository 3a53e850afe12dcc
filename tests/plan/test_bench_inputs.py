"""The benchmarks `plan` trusts: the nanoGPT anchor refuses a folder that is not a checkout (one
line, exit 2, nothing downloaded), and the data benchmark's sample is mixed across sources."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from gptlab.data.documents import Document

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def train_bench():
    return _load("train_throughput")


def test_nanogpt_mode_refuses_a_missing_checkout_in_one_line(train_bench, tmp_path, capsys):
    assert train_bench.main(["--nanogpt", str(tmp_path / "absent"), "--rounds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("--nanogpt: ") and "absent" in err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train.py").write_text("")
    assert train_bench.main(["--nanogpt", str(tmp_path / "half")]) == 2
    err = capsys.readouterr().err
    assert "model.py" in err and "configurator.py" in err and "train.py," not in err


def test_nanogpt_flops_match_its_parameter_count(train_bench):
    # GPT-2 124M without biases, tied head, no position table: 123.6M parameters in nanoGPT's count
    L, d, h, T, V = 12, 768, 12, 1024, 50304
    n = (train_bench.nanogpt_flops_per_token(L, d, h, T, V) - 12 * L * d * T) / 6
    assert n == pytest.approx(124.0e6, rel=0.01)


def test_data_sample_is_balanced_by_bytes_across_sources():
    data_bench = _load("data_throughput")
    docs = [Document(f"big{i}", "x" * 10_000, "big", "big") for i in range(100)]
    docs += [Document(f"mid{i}", "y" * 1_000, "mid", "mid") for i in range(300)]
    docs += [Document(f"tiny{i}", "z" * 100, "tiny", "tiny") for i in range(5)]  # 500 B in all
    sample = data_bench.mixed_sample(docs, mb=0.2, seed=0)
    mix = data_bench.mix_table(sample, docs)
    assert set(mix) == {"big", "mid", "tiny"}
    assert mix["tiny"]["docs"] == 5  # a small source is taken whole
    assert abs(mix["big"]["mb"] - mix["mid"]["mb"]) <= 0.011  # the others share the budget
    assert mix["big"]["corpus_share"] > 0.7 > mix["big"]["share"]  # unlike the head of the corpus
    assert sample == data_bench.mixed_sample(docs, mb=0.2, seed=0)  # seeded
