import json

import numpy as np

from builders import pack_config
from gptlab.manifest import read_manifest
from gptlab.pack.build import run_pack
from gptlab.pack.packed import PackedData


def test_packed_index_maps_every_sequence(pack_dir):
    data = PackedData(pack_dir)
    idx = json.loads((pack_dir / "index.json").read_text())
    assert len(data) == idx["n_sequences"] == sum(s["n_sequences"] for s in idx["shards"])
    rows = data.sequences(np.array([0, len(data) - 1, 3]))
    assert rows.shape == (3, data.seq_len + 1) and rows.dtype == np.int64
    assert rows.max() < data.vocab_size
    # The EOS separator between documents appears in the stream.
    assert (data.sequences(np.arange(len(data))) == idx["eos_id"]).sum() >= idx["docs"] // 2
    counts = data.unigram_counts()
    assert counts.shape == (data.vocab_size,) and counts.sum() >= idx["n_tokens"]


def test_pack_is_byte_identical_when_rerun(curated, tokenizer_dir, pack_dir, tmp_path):
    run_pack(pack_config(), curated, tokenizer_dir, tmp_path / "p")
    a = read_manifest(pack_dir)["outputs"]
    b = read_manifest(tmp_path / "p")["outputs"]
    assert a == b
