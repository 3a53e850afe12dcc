"""bpb at a multiple of the training length (C9): longer windows for every position scheme."""
import pytest
import torch

from gptlab.eval.config import EvalConfig
from gptlab.lab.lengths import at_width, bpb_at_length
from gptlab.model import GPT
from gptlab.model.config import ModelConfig


@pytest.mark.parametrize("position", ["learned", "rope", "alibi"])
def test_a_longer_window_keeps_the_trained_prefix_and_scores_beyond_it(position):
    torch.manual_seed(1)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=50, position=position)).eval()
    longer = at_width(model, 32).eval()
    assert longer.config.block_size == 32
    x = torch.randint(0, 50, (2, 32))
    with torch.no_grad():
        out = longer(x)                      # the original could not take 32 tokens at all
        assert out.shape == (2, 32, 50) and torch.isfinite(out).all()
        # causal: the first 16 positions see exactly what the trained model saw
        assert torch.allclose(out[:, :16], model(x[:, :16]), atol=1e-5)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(x)
    shorter = at_width(model, 8)             # a shorter window is the same model
    assert shorter.config.block_size == 8 and shorter.inner is model


def test_bpb_at_twice_the_length_is_cached_per_checkpoint(trained_checkpoint, curated, tmp_path):
    train_dir = trained_checkpoint.parent.parent
    out = tmp_path / "len-2x.json"
    b2 = bpb_at_length(train_dir, curated / "heldout", 64, 2, EvalConfig(), out)
    b1 = bpb_at_length(train_dir, curated / "heldout", 64, 1, EvalConfig(), tmp_path / "len-1x.json")
    assert b1 > 0 and b2 > 0 and b1 != b2
    assert "never trained" in out.read_text()               # the default model has learned positions
    out.write_text(out.read_text().replace(str(b2), "123.0"))
    assert bpb_at_length(train_dir, curated / "heldout", 64, 2, EvalConfig(), out) == 123.0   # reused
