"""Crashes that `gptlab selftest faults` (sections inputs and cli) found: each is now one
`gptlab: error:` line with exit code 2."""
from __future__ import annotations

import pytest

from gptlab import cli


def _one_line_error(argv, capsys) -> str:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("gptlab: error:"), err
    assert code == 2, err
    return lines[-1]


@pytest.mark.parametrize("content", [b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
                                     b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n"])
def test_a_deeply_nested_toml_config_is_one_line(tmp_path, capsys, content):
    (tmp_path / "deep.toml").write_bytes(content)
    line = _one_line_error(["data", "pack", "--input", tmp_path / "missing", "--tokenizer", tmp_path / "missing",
                            "--out", tmp_path / "out", "--config", tmp_path / "deep.toml"], capsys)
    assert "deep.toml" in line and "nested too deeply" in line


def test_a_non_utf8_ablation_file_is_one_line(tmp_path, capsys):
    (tmp_path / "ab.toml").write_bytes("[ablation]\nname = 'caf\xe9'\n".encode("latin-1"))
    line = _one_line_error(["ablate", "--config", tmp_path / "ab.toml", "--out", tmp_path / "out"], capsys)
    assert "ab.toml" in line and "UTF-8" in line


@pytest.mark.parametrize("content", [b"[]", b"[1, 2]", b'"text"', "{\"stage\": \"caf\xe9\"}".encode("latin-1")])
def test_a_manifest_that_is_no_json_object_is_one_line(tmp_path, capsys, content):
    (tmp_path / "cur").mkdir()
    (tmp_path / "cur" / "manifest.json").write_bytes(content)
    line = _one_line_error(["tokenizer", "train", "--input", tmp_path / "cur", "--out", tmp_path / "tok"], capsys)
    assert "cur" in line and "not complete" in line


def test_a_heldout_file_that_is_no_shard_is_one_line(tmp_path, capsys, untrained_checkpoint_dir):
    (tmp_path / "h.jsonl").write_text('{"text": "plain JSONL, not a zstd shard"}\n')
    line = _one_line_error(["eval", "--checkpoint", untrained_checkpoint_dir, "--heldout", tmp_path / "h.jsonl",
                            "--out", tmp_path / "ev"], capsys)
    assert "h.jsonl" in line and "unreadable shard" in line


@pytest.mark.parametrize("flag, value", [("--usd-per-hour", "nan"), ("--usd-per-hour", "inf"),
                                         ("--usd-per-1k-tokens", "nan"), ("--usd-per-1k-tokens", "1e309")])
def test_bakeoff_price_flags_must_be_finite(tmp_path, capsys, flag, value):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "good", "label": "a"}\n{"text": "bad", "label": "b"}\n')
    line = _one_line_error(["advise", "bakeoff", "--train", data, "--test", data, "--out", tmp_path / "b",
                            flag, value], capsys)
    assert line.startswith(f"gptlab: error: {flag} ") and "finite" in line
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("line", ["[" * 100_000, '{"query": "x", "n": ' + "9" * 5000 + "}"])
def test_a_tasks_line_too_deep_or_with_a_huge_integer_is_one_line(tmp_path, capsys, untrained_checkpoint_dir, line):
    t = tmp_path / "task.jsonl"
    t.write_text(line + "\n")
    out = _one_line_error(["eval", "--checkpoint", untrained_checkpoint_dir, "--tasks", t, "--out", tmp_path / "ev"],
                          capsys)
    assert "task.jsonl:1" in out and "not JSON" in out


def test_an_hf_config_too_deep_is_one_line(tmp_path, capsys):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("[" * 100_000)
    assert "config.json" in _one_line_error(["import", "--input", tmp_path / "hf", "--out", tmp_path / "ck"], capsys)
