"""Every loader refuses a damaged or pickle-bearing file with one line naming it, and never runs it.

Found by `gptlab selftest faults` (security, checkpoints): a pickle planted as a checkpoint's
optimizer or RNG state, tokenizer or config, as a pack's unigram counts, as a classifier's model,
or as an HF folder's safetensors, each under a re-signed manifest, gave an internal error (a
traceback-class failure) instead of a one-line error. A symbolic link replacing a stage's output
subfolder made a rerun write outside the stage's folder.
"""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest

from gptlab.api import model_config_of
from gptlab.checkpoint import load_tensors, restore_rng
from gptlab.data.classifier import QualityModel
from gptlab.errors import InputError, UserError
from gptlab.interop import export_hf, import_hf
from gptlab.manifest import Stage
from gptlab.pack.packed import PackedData
from gptlab.tokenizer import load_tokenizer


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def pickled(path, marker):
    path.write_bytes(pickle.dumps({"w": Payload(marker)}))


def test_a_pickle_as_optimizer_or_rng_state_is_an_input_error(tmp_path):
    marker = tmp_path / "ran"
    for name in ("optimizer.safetensors", "rng.safetensors"):
        pickled(tmp_path / name, marker)
        with pytest.raises(InputError, match=name):
            load_tensors(tmp_path / name)
    with pytest.raises(InputError, match="rng.safetensors"):
        restore_rng(tmp_path)
    assert not marker.exists()


def test_a_pickle_as_tokenizer_is_an_input_error(untrained_checkpoint_dir, tmp_path):
    marker = tmp_path / "ran"
    ck = tmp_path / "ck"
    shutil.copytree(untrained_checkpoint_dir, ck)
    pickled(ck / "tokenizer.json", marker)
    with pytest.raises(InputError, match="tokenizer.json"):
        load_tokenizer(ck)
    assert not marker.exists()


def test_garbage_config_json_is_an_input_error_even_when_it_is_read(untrained_checkpoint_dir, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(untrained_checkpoint_dir, ck)
    (ck / "config.json").write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match="config.json: not valid JSON"):
        model_config_of(ck)


def test_object_array_as_unigram_counts_is_an_input_error(pack_dir, tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(pack_dir, pack)
    marker = tmp_path / "ran"
    with open(pack / "unigram.npy", "wb") as f:
        np.save(f, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="unigram.npy"):
        PackedData(pack).unigram_counts()
    assert not marker.exists()


def test_a_classifier_model_with_a_pickle_is_an_input_error(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "classifier.json").write_text('{"n_features": 16, "ngram_max": 2}')
    with open(tmp_path / "classifier.npz", "wb") as f:
        np.savez(f, coef=np.array([Payload(marker)], dtype=object), intercept=np.float32(0))
    with pytest.raises(InputError, match="classifier.npz"):
        QualityModel.load(tmp_path)
    (tmp_path / "classifier.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputError, match="classifier.npz"):
        QualityModel.load(tmp_path)
    assert not marker.exists()


def test_a_stage_refuses_a_symlink_in_its_folder(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    with Stage(out, "curate", "k1") as st:
        (st.dir / "train").mkdir()
        st.done([])
    shutil.rmtree(out / "train")
    (out / "train").symlink_to(outside)
    with pytest.raises(UserError, match="symbolic link"):
        with Stage(out, "curate", "k2"):
            pass
    with Stage(out, "curate", "k2", force=True) as st:   # --force: the user's call
        assert st.dir == out


@pytest.mark.slow
def test_a_pickle_as_hf_safetensors_is_an_input_error(untrained_checkpoint_dir, tmp_path):
    hf = export_hf(untrained_checkpoint_dir, tmp_path / "hf")
    marker = tmp_path / "ran"
    pickled(hf / "model.safetensors", marker)
    with pytest.raises(InputError, match="cannot load it"):
        import_hf(hf, tmp_path / "imported")
    assert not marker.exists()
