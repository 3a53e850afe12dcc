"""The Stage routine: claim a folder, skip when complete, refuse what is not the stage's."""
import pytest

from gptlab.errors import UserError
from gptlab.manifest import MARKER, RUN, Stage, atomic_write, owner_of, read_manifest, verify


def _finish(out, name="pack", key="k1", text="data"):
    with Stage(out, name, key) as st:
        assert not st.complete
        atomic_write(st.dir / "out.txt", text)
        return st.done(["out.txt"], {"n": len(text)})


def test_new_folder_is_claimed_finished_and_then_skipped(tmp_path):
    out = tmp_path / "p"
    assert _finish(out) == {"n": 4}
    assert owner_of(out) == "pack" and (out / MARKER).read_text() == "pack\n"
    assert verify(out, "k1") == (True, "complete")
    with Stage(out, "pack", "k1") as st:
        assert st.complete and st.summary == {"n": 4} and st.owned


def test_a_changed_key_reruns_and_drops_the_stale_manifest_first(tmp_path):
    out = tmp_path / "p"
    _finish(out)
    with pytest.raises(RuntimeError):
        with Stage(out, "pack", "k2") as st:
            assert not st.complete and st.owned
            raise RuntimeError("killed while rewriting")
    # Killed mid-rewrite: the old manifest is gone, so the folder never reads as complete.
    assert read_manifest(out) is None and not verify(out)[0]
    assert _finish(out, key="k2", text="other") == {"n": 5}
    assert verify(out, "k2")[0] and not verify(out, "k1")[0]


def test_partial_work_is_kept_for_the_stage_to_resume(tmp_path):
    out = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        with Stage(out, "pack", "k") as st:
            atomic_write(st.dir / "part-0.json", "{}")
            raise KeyboardInterrupt
    with Stage(out, "pack", "k") as st:   # no --force needed: the folder is the stage's own
        assert not st.complete and st.owned
        assert (st.dir / "part-0.json").exists()


def test_another_stages_folder_is_refused_unless_forced(tmp_path):
    out = tmp_path / "p"
    _finish(out, name="pack")
    with pytest.raises(UserError) as e:
        Stage(out, "train", "t").__enter__()
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and "pack stage" in msg and "--force" in msg
    assert read_manifest(out)["stage"] == "pack"       # nothing replaced
    with Stage(out, "train", "t", force=True) as st:
        assert not st.owned                             # its files are not train's to delete
        st.done([], {})
    assert owner_of(out) == "train" and (out / "out.txt").exists()


def test_a_marker_of_a_killed_stage_also_claims_the_folder(tmp_path):
    out = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        with Stage(out, "curate", "k"):
            raise KeyboardInterrupt
    with pytest.raises(UserError, match="curate stage"):
        Stage(out, "tokenizer", "k").__enter__()


def test_a_non_empty_folder_gptlab_did_not_make_is_refused_unless_forced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError) as e:
        Stage(out, "eval", "k").__enter__()
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and "not made by gptlab" in msg and "--force" in msg
    assert not (out / MARKER).exists()
    with Stage(out, "eval", "k", force=True) as st:
        assert not st.owned
        atomic_write(st.dir / "eval.json", "{}")
        st.done(["eval.json"])
    assert (out / "notes.txt").read_text() == "keep me"
    with Stage(out, "eval", "k") as st:                 # now eval's folder: no --force needed
        assert st.complete


def test_nested_stage_folders_are_gptlab_content(tmp_path):
    out = tmp_path / "ev"
    _finish(out / "tasks", name="eval-tasks")
    with Stage(out, "eval", "k") as st:
        assert not st.complete and st.owned


def test_a_run_folder_is_not_a_stage_folder(tmp_path):
    run = tmp_path / "run"
    _finish(run / "curate", name="curate")
    atomic_write(run / MARKER, RUN + "\n")
    with pytest.raises(UserError, match="run folder") as e:
        Stage(run, "curate", "k").__enter__()
    assert "--force" in str(e.value)
    # Nor may a stage adopt a folder of runs as its own.
    with pytest.raises(UserError, match="not made by gptlab"):
        Stage(tmp_path, "curate", "k").__enter__()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        Stage(tmp_path / "f", "pack", "k", force=True).__enter__()
