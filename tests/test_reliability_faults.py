"""Defects `gptlab selftest faults` found (files, checkpoints and kills sections), one test each."""
from __future__ import annotations

import shutil

import pytest

from gptlab.checkpoint import find_checkpoint
from gptlab.cli import main
from gptlab.data.classifier import train_from_paths
from gptlab.errors import UserError
from gptlab.manifest import MARKER, Stage, atomic_path, verify
from gptlab.report import write_report


def test_a_garbage_manifest_reads_as_no_manifest_and_the_previous_checkpoint_is_used(untrained_checkpoint_dir,
                                                                                     tmp_path):
    folder = tmp_path / "train" / "checkpoints"
    older, newer = folder / "step-00000010", folder / "step-00000020"
    shutil.copytree(untrained_checkpoint_dir, older)
    shutil.copytree(untrained_checkpoint_dir, newer)
    for garbage in (b"\x90\x84\xff garbage", b"[1, 2]", b'{"complete": true, "outputs": {"a": 3}}'):
        (newer / "manifest.json").write_bytes(garbage)
        assert verify(newer) == (False, "unreadable manifest")
        assert find_checkpoint(tmp_path / "train") == older


def test_a_stage_claims_a_folder_whose_marker_write_was_killed(tmp_path):
    out = tmp_path / "curate"
    out.mkdir()
    leftover = out / f".{MARKER}.abc123.tmp"      # atomic_path's temp name, before the rename
    leftover.write_text("")
    with Stage(out, "curate", "k") as st:
        assert st.owned
    assert not leftover.exists() and (out / MARKER).read_text().strip() == "curate"


def test_a_file_output_named_as_a_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(IsADirectoryError):
        with atomic_path(tmp_path):
            pass
    with pytest.raises(UserError, match="is a folder"):
        write_report(tmp_path, tmp_path)


def test_advise_refuses_to_write_over_its_answers_file(tmp_path, capsys):
    answers = tmp_path / "answers.yaml"
    answers.write_text("task: classification\n")
    assert main(["advise", "--answers", str(answers), "--no-interactive", "--out", str(answers)]) == 2
    assert answers.read_text() == "task: classification\n"
    assert "is the --answers file" in capsys.readouterr().err


def test_classifier_train_refuses_a_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    with pytest.raises(UserError, match="not made by gptlab"):
        train_from_paths([str(tmp_path / "pos.jsonl")], [str(tmp_path / "neg.jsonl")], out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
