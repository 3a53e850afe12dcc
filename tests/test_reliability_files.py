"""Reliability of what commands write: export/import never destroy a user's files, output
files honour the umask, checkpoint bytes are reproducible, and every checkpoint loader
verifies checksums and names the checkpoint it used."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from gptlab import cli
from gptlab.checkpoint import find_checkpoint, save_checkpoint, save_weights
from gptlab.manifest import atomic_write, file_checksum, read_manifest, write_manifest


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("gptlab")]
    assert len(lines) == 1, err
    assert lines[0].startswith("gptlab: error:"), err
    return lines[0]


def _foreign(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    keep = folder / "my-notes.txt"
    keep.write_text("not gptlab's")
    return keep


# ----------------------------------------------------------------------------- 1: --out never wipes

def test_export_refuses_a_foreign_folder_and_keeps_its_files(tmp_path, untrained_checkpoint_dir, capsys):
    keep = _foreign(tmp_path / "hf")
    code = cli.main(["export", "--checkpoint", str(untrained_checkpoint_dir), "--out", str(tmp_path / "hf")])
    assert code == 2
    assert "--force" in _error_line(capsys.readouterr().err)
    assert keep.read_text() == "not gptlab's"
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["my-notes.txt"]


def test_export_to_the_working_folder_is_refused(tmp_path, untrained_checkpoint_dir, capsys, monkeypatch):
    keep = _foreign(tmp_path / "cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    for force in ([], ["--force"]):
        code = cli.main(["export", "--checkpoint", str(untrained_checkpoint_dir), "--out", ".", *force])
        assert code == 2
        assert "working folder" in _error_line(capsys.readouterr().err)
    assert keep.exists() and sorted(p.name for p in (tmp_path / "cwd").iterdir()) == ["my-notes.txt"]


def test_import_refuses_a_foreign_folder(tmp_path, untrained_checkpoint_dir, capsys):
    pytest.importorskip("transformers")
    hf = tmp_path / "hf"
    assert cli.main(["export", "--checkpoint", str(untrained_checkpoint_dir), "--out", str(hf)]) == 0
    keep = _foreign(tmp_path / "ck")
    capsys.readouterr()
    assert cli.main(["import", "--input", str(hf), "--out", str(tmp_path / "ck")]) == 2
    assert "--force" in _error_line(capsys.readouterr().err)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["my-notes.txt"]
    # --force writes the checkpoint beside the user's file, deleting nothing of theirs.
    assert cli.main(["import", "--input", str(hf), "--out", str(tmp_path / "ck"), "--force"]) == 0
    assert keep.read_text() == "not gptlab's" and (tmp_path / "ck" / "model.safetensors").exists()
    # A rerun over its own earlier import replaces it without --force.
    assert cli.main(["import", "--input", str(hf), "--out", str(tmp_path / "ck")]) == 0
    assert keep.exists()
    # An export into a folder holding an earlier export keeps the user's extra file too.
    (hf / "notes.md").write_text("mine")
    assert cli.main(["export", "--checkpoint", str(untrained_checkpoint_dir), "--out", str(hf)]) == 0
    assert (hf / "notes.md").read_text() == "mine" and (hf / "model.safetensors").exists()


# ----------------------------------------------------------------------------- 9: umask

def test_atomic_writes_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        ck = save_checkpoint(tmp_path / "cks", 1, {"w": torch.zeros(2)}, None, {"model": {}})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    for p in ck.iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, p.name


# ----------------------------------------------------------------------------- 7: reproducible bytes

def test_identical_states_give_identical_safetensors_bytes(tmp_path):
    sd = {"a.weight": torch.arange(6.0).reshape(2, 3), "b.bias": torch.ones(3)}
    sums = set()
    for i in range(10):
        save_weights(sd, tmp_path / f"m{i}.safetensors", aliases={"head.weight": "a.weight"})
        sums.add(file_checksum(tmp_path / f"m{i}.safetensors"))
    assert len(sums) == 1


# ----------------------------------------------------------------------------- 6: verified loading

def _run_with_corrupt_newest(tmp_path: Path, ck: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(ck, run / "checkpoints" / "step-00000001")
    shutil.copytree(ck, run / "checkpoints" / "step-00000002")
    weights = run / "checkpoints" / "step-00000002" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF   # a flipped bit in the tensor data: the file still parses
    weights.write_bytes(bytes(data))
    return run


def test_a_run_with_a_corrupt_newest_checkpoint_falls_back_and_says_so(tmp_path, untrained_checkpoint_dir):
    run = _run_with_corrupt_newest(tmp_path, untrained_checkpoint_dir)
    lines: list[str] = []
    got = find_checkpoint(run, log=lines.append)
    assert got.name == "step-00000001"
    assert any("step-00000002" in ln and "checksum" in ln for ln in lines), lines
    assert any("using" in ln and "step-00000001" in ln for ln in lines), lines


def test_generate_logs_the_fallback(tmp_path, untrained_checkpoint_dir, capsys):
    run = _run_with_corrupt_newest(tmp_path, untrained_checkpoint_dir)
    code = cli.main(["generate", "--checkpoint", str(run), "--prompt", "In the", "--max-new-tokens", "2"])
    assert code == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "step-00000002 is unusable" in err and "step-00000001" in err


@pytest.mark.parametrize("command", ["generate", "export"])
def test_a_corrupt_checkpoint_folder_given_directly_is_refused(tmp_path, untrained_checkpoint_dir, capsys, command):
    run = _run_with_corrupt_newest(tmp_path, untrained_checkpoint_dir)
    bad = run / "checkpoints" / "step-00000002"
    argv = {"generate": ["generate", "--checkpoint", str(bad), "--prompt", "In the"],
            "export": ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "hf")]}[command]
    assert cli.main(argv) == 2
    assert "checksum mismatch" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "hf").exists()


def test_an_unparseable_safetensors_under_a_valid_manifest_is_one_line(tmp_path, untrained_checkpoint_dir, capsys):
    ck = tmp_path / "step-00000000"
    shutil.copytree(untrained_checkpoint_dir, ck)
    (ck / "model.safetensors").write_bytes(b"\xff" * 64)
    m = read_manifest(ck)
    write_manifest(ck, stage="checkpoint", key=m["key"], outputs=list(m["outputs"]))
    assert cli.main(["generate", "--checkpoint", str(ck), "--prompt", "x"]) == 2
    assert "model.safetensors" in _error_line(capsys.readouterr().err)


def test_an_hf_export_honours_the_umask(tmp_path, untrained_checkpoint_dir):
    pytest.importorskip("transformers")
    old = os.umask(0o022)
    try:
        assert cli.main(["export", "--checkpoint", str(untrained_checkpoint_dir), "--out", str(tmp_path / "hf")]) == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "hf").iterdir()}
    assert set(modes.values()) == {0o644}, modes
