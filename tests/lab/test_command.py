"""`gptlab ablate` as cli.py mounts it: flags and folders are checked before anything trains."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gptlab.errors import ConfigError, UserError
from gptlab.lab.command import add_ablate_parser

Z_LOSS = Path(__file__).resolve().parents[2] / "configs" / "ablate" / "z_loss.toml"


def _args(*argv: str):
    ap = argparse.ArgumentParser()
    add_ablate_parser(ap.add_subparsers())
    return ap.parse_args(["ablate", *argv])


def test_the_parser_takes_the_documented_flags():
    a = _args("--config", "x.toml", "--seeds", "3", "--size", "tiny", "--workers", "2", "--out", "o")
    assert (a.config, a.seeds, a.size, a.workers, a.out) == ("x.toml", "3", "tiny", "2", "o")


@pytest.mark.parametrize("flag, value, message", [("--seeds", "two", "--seeds"), ("--workers", "0", "--workers")])
def test_bad_numbers_are_one_line_errors(tmp_path, flag, value, message):
    a = _args("--config", str(Z_LOSS), flag, value, "--out", str(tmp_path / "o"))
    with pytest.raises(UserError, match=message):
        a.fn(a)


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("not an ablation")
    a = _args("--config", str(Z_LOSS), "--out", str(tmp_path))
    with pytest.raises(UserError, match="not an ablation folder"):
        a.fn(a)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_a_missing_file_is_named(tmp_path):
    a = _args("--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="nope.toml"):
        a.fn(a)
    assert not (tmp_path / "o").exists()
