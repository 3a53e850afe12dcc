"""Tracebacks where one line is promised: each bad input below is one `gptlab: error:` line
with exit code 2, naming what is wrong."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from gptlab import cli


def _error(argv, capsys) -> str:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("gptlab")]
    assert len(lines) == 1 and lines[0].startswith("gptlab: error:"), err
    assert code == 2, err
    return lines[0]


@pytest.mark.parametrize("content", ["", "garbage{", "[1, 2]"])
def test_a_bad_pack_index_is_one_line(tmp_path, capsys, pack_dir, content):
    pack = tmp_path / "pack"
    shutil.copytree(pack_dir, pack)
    (pack / "index.json").write_text(content)
    line = _error(["train", "--data", pack, "--out", tmp_path / "train", "train.max_steps=1"], capsys)
    assert "index.json" in line


def test_pack_on_an_empty_split_is_one_line(tmp_path, capsys, tokenizer_dir):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "junk.jsonl").write_bytes(os.urandom(4096))   # quarantined: nothing is kept
    assert cli.main(["data", "curate", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "cur"),
                     "--recipe", "dedup", "--workers", "1"]) == 0
    capsys.readouterr()
    _error(["data", "pack", "--input", tmp_path / "cur", "--tokenizer", tokenizer_dir, "--out", tmp_path / "pack"],
           capsys)


def test_classifier_train_with_no_positives_is_one_line(tmp_path, capsys):
    pytest.importorskip("sklearn")
    (tmp_path / "pos.jsonl").write_text("")
    (tmp_path / "neg.jsonl").write_text("".join(json.dumps({"text": f"raw page {i} " * 20}) + "\n"
                                                for i in range(20)))
    line = _error(["data", "classifier", "train", "--positives", tmp_path / "pos.jsonl",
                   "--negatives", tmp_path / "neg.jsonl", "--out", tmp_path / "clf"], capsys)
    assert "positives" in line


def test_an_hf_folder_without_weights_is_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    line = _error(["import", "--input", hf, "--out", tmp_path / "ck"], capsys)
    assert "safetensors" in line
    assert not (tmp_path / "ck").exists()


def test_a_bad_tasks_line_is_one_line(tmp_path, capsys, untrained_checkpoint_dir):
    t = tmp_path / "task.jsonl"
    t.write_text('{"query": "2+2=", "choices": ["4", "5"], "gold": 0}\n{not json\n')
    line = _error(["eval", "--checkpoint", untrained_checkpoint_dir, "--tasks", t, "--out", tmp_path / "ev"], capsys)
    assert "task.jsonl" in line


@pytest.mark.parametrize("flag, value", [("--temperature", "-1"), ("--top-p", "2"), ("--num-samples", "0"),
                                         ("--temperature", "nan")])
def test_generate_refuses_meaningless_sampling_flags(capsys, untrained_checkpoint_dir, flag, value):
    assert flag in _error(["generate", "--checkpoint", untrained_checkpoint_dir, "--prompt", "x", flag, value], capsys)


@pytest.mark.parametrize("flag, value", [("--latency-ms", "nan"), ("--budget-usd-per-1k", "inf")])
def test_advise_refuses_non_finite_numbers(capsys, flag, value):
    line = _error(["advise", "--json", "--task", "classification", flag, value], capsys)
    assert flag.lstrip("-").replace("-", "_") in line
