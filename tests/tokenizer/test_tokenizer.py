from gptlab.data.documents import read_shard
from gptlab.tokenizer import EOS, eos_id, load_tokenizer, train_tokenizer

TEXTS = ["def add(a, b):\n    return a + b\n"] * 50 + ["In the beginning was the word."] * 50


def test_bpe_roundtrips_any_text_and_learns_merges(tmp_path):
    tok = train_tokenizer(TEXTS, vocab_size=300, min_frequency=2)
    assert tok.get_vocab_size() <= 300
    for s in ["return a + b", "naïve café 日本語 \x00\t", ""]:
        assert tok.decode(tok.encode(s).ids) == s  # byte-level: nothing is unknown
    # Merges were learned: a frequent phrase takes fewer tokens than bytes.
    assert len(tok.encode("return a + b").ids) < len("return a + b".encode())
    assert tok.token_to_id(EOS) == eos_id(tok)
    tok.save(str(tmp_path / "tokenizer.json"))
    again = load_tokenizer(tmp_path)
    assert again.encode("In the beginning").ids == tok.encode("In the beginning").ids


def test_tokenizer_is_trained_on_the_training_split_only(curated, tokenizer_dir):
    tok = load_tokenizer(tokenizer_dir)
    assert tok.get_vocab_size() == 1024
    held = list(read_shard(curated / "heldout" / "heldout.jsonl.zst"))
    assert held, "the curated fixture holds documents out"
    train_ids = {d.id for p in (curated / "train").glob("*.zst") for d in read_shard(p)}
    assert not train_ids & {d.id for d in held}
