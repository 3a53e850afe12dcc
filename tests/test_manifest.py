import pytest

from gptlab.manifest import (
    atomic_path,
    atomic_write,
    invalidate,
    is_complete,
    read_manifest,
    stage_key,
    verify,
    write_manifest,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "f.txt"
    atomic_write(p, "one")
    atomic_write(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_failed_atomic_write_leaves_nothing_behind(tmp_path):
    p = tmp_path / "f.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert not p.exists()
    assert list(tmp_path.iterdir()) == []


def test_manifest_verifies_checksums_and_key(tmp_path):
    (tmp_path / "out.bin").write_bytes(b"abc" * 1000)
    write_manifest(tmp_path, stage="s", key="k1", outputs=["out.bin"], summary={"n": 1})
    assert is_complete(tmp_path, "k1")
    assert verify(tmp_path, "k2") == (False, "inputs or config changed")
    assert read_manifest(tmp_path)["summary"] == {"n": 1}
    # Same size, different bytes: only the checksum can notice.
    (tmp_path / "out.bin").write_bytes(b"abd" * 1000)
    ok, why = verify(tmp_path, "k1")
    assert not ok and "checksum mismatch in out.bin" in why
    invalidate(tmp_path)
    assert verify(tmp_path) == (False, "no manifest")


def test_missing_output_is_not_complete(tmp_path):
    (tmp_path / "x").write_text("1")
    write_manifest(tmp_path, stage="s", key="k", outputs=["x"])
    (tmp_path / "x").unlink()
    assert verify(tmp_path, "k") == (False, "missing output x")


def test_stage_key_follows_config_and_upstream_outputs(tmp_path):
    up = tmp_path / "up"
    up.mkdir()
    (up / "o").write_text("v1")
    write_manifest(up, stage="up", key="u", outputs=["o"])
    k1 = stage_key({"a": 1}, [up])
    assert k1 == stage_key({"a": 1}, [up])
    assert k1 != stage_key({"a": 2}, [up])
    (up / "o").write_text("v2")
    write_manifest(up, stage="up", key="u", outputs=["o"])
    assert k1 != stage_key({"a": 1}, [up])
    with pytest.raises(FileNotFoundError, match="upstream stage is not complete"):
        stage_key({}, [tmp_path / "nothing"])
