"""The CLI is the one error boundary: a user's mistake is one line with exit code 2, a bug
says it is a bug, and --debug shows the traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gptlab import cli


def _run(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("text, key", [
    ("model = 3\n", "model"),
    ("[train]\nlr = nan\n", "train.lr"),
    ("[train]\nprecision = \"fp8\"\n", "train.precision"),
    ("[train]\nmax_steps = \"many\"\n", "train.max_steps"),
    ("[nosuch]\nx = 1\n", "nosuch"),
])
def test_bad_config_files_are_one_line_naming_the_key(tmp_path, capsys, text, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    code, err = _run(["data", "harvest", "--config", str(cfg), "--out", str(tmp_path / "h")], capsys)
    assert code == 2
    assert key in _one_line(err)
    assert not (tmp_path / "h").exists()


def test_non_finite_override_is_refused(tmp_path, capsys):
    code, err = _run(["data", "harvest", "--out", str(tmp_path / "h"), "data.eval_fraction=nan"], capsys)
    assert code == 2 and "data.eval_fraction" in _one_line(err)


def test_config_that_is_not_utf8_or_a_folder(tmp_path, capsys):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes("[train]\n# caf\xe9\n".encode("latin-1"))
    code, err = _run(["data", "harvest", "--config", str(bad), "--out", str(tmp_path / "h")], capsys)
    assert code == 2 and "latin1.toml" in _one_line(err) and "UTF-8" in err
    code, err = _run(["data", "harvest", "--config", str(tmp_path), "--out", str(tmp_path / "h")], capsys)
    assert code == 2 and "folder" in _one_line(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_names_the_flag(tmp_path, capsys):
    code, err = _run(["eval", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "e"), "--device", "cuda"], capsys)
    assert code == 2 and "--device" in _one_line(err) and "CUDA" in err


def test_a_missing_input_is_one_line(tmp_path, capsys):
    code, err = _run(["eval", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "e"),
                      "--heldout", str(tmp_path / "nope")], capsys)
    assert code == 2 and "nope" in _one_line(err)


def test_an_internal_error_says_it_is_a_bug_and_debug_shows_the_traceback(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("unexpected state")
    monkeypatch.setattr(cli, "cmd_report", boom)
    code, err = _run(["report", "somewhere"], capsys)
    assert code == 1
    assert "bug" in err and "unexpected state" in err and "--debug" in err and "Traceback" not in err
    code, err = _run(["--debug", "report", "somewhere"], capsys)
    assert code == 1 and "Traceback" in err


def test_a_closed_pipe_is_not_an_error():
    # `gptlab advise --json | head -c 20`: the reader goes away before we finish writing.
    proc = subprocess.run(f"{sys.executable} -m gptlab.cli advise --json --task classification --labels 50 "
                          f"| head -c 20", shell=True, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("{")
