"""The chunked cross-entropy + z-loss equals the plain one on full logits: values and gradients."""
from __future__ import annotations

import pytest
import torch

from gptlab.model import GPT, ModelConfig
from gptlab.model.loss import lm_loss, plain_lm_loss, plain_lm_loss_from_logits

ATOL = 1e-6


def tiny(**kw) -> ModelConfig:
    base = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=50, block_size=24, init_std=0.2)
    base.update(kw)
    return ModelConfig(**base)


def batch(V: int, B: int = 3, T: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)


def grads_of(model: GPT, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kw", [
    dict(),                                                  # tied embeddings
    dict(tie_embeddings=False),
    dict(logit_scale="rsqrt_d"),                             # PaLM: tied and scaled by 1/sqrt(d)
    dict(logit_scale="rsqrt_d", tie_embeddings=False, bias=True),
])
@pytest.mark.parametrize("z_coef", [0.0, 1e-2])
@pytest.mark.parametrize("chunk", [1, 7, 48, None])          # one row, uneven chunks, all rows in one
def test_chunked_loss_matches_the_plain_loss_and_its_gradients(kw, z_coef, chunk):
    torch.manual_seed(0)
    model = GPT(tiny(**kw))
    x, y = batch(50)
    ref = plain_lm_loss_from_logits(model(x), y, z_coef)        # the trainer's loss before this module
    g_ref = grads_of(model, ref.ce + ref.z)
    model.loss_chunk = chunk
    out = model(x, targets=y, z_coef=z_coef)
    g_out = grads_of(model, out.ce + out.z)
    assert torch.allclose(out.ce, ref.ce, atol=ATOL, rtol=0)
    assert torch.allclose(out.z, ref.z, atol=ATOL, rtol=0)
    assert torch.allclose(out.max_logit, ref.max_logit, atol=ATOL, rtol=0)
    assert (ref.z > 0) == (z_coef > 0)
    assert g_out.keys() == g_ref.keys()
    for name in g_ref:
        assert torch.allclose(g_out[name], g_ref[name], atol=ATOL, rtol=1e-5), name


def test_ce_and_z_have_their_own_gradients():
    # The backward is exact for any pair of upstream gradients, not only for ce + z.
    torch.manual_seed(0)
    h = torch.randn(20, 8, requires_grad=True)
    w = torch.randn(11, 8, requires_grad=True)
    y = torch.randint(0, 11, (20,))
    for a, b in [(1.0, 0.0), (0.0, 1.0), (0.3, -2.0)]:
        ref = plain_lm_loss(h, w, y, 0.05, logit_scale=0.7)
        gh, gw = torch.autograd.grad(a * ref.ce + b * ref.z, (h, w))
        out = lm_loss(h, w, y, 0.05, logit_scale=0.7, chunk=6)
        ch, cw = torch.autograd.grad(a * out.ce + b * out.z, (h, w))
        assert torch.allclose(ch, gh, atol=ATOL) and torch.allclose(cw, gw, atol=ATOL)


def test_no_gradient_state_without_grad():
    torch.manual_seed(0)
    model = GPT(tiny())
    x, y = batch(50)
    with torch.no_grad():
        out = model(x, targets=y, z_coef=1e-4)
        ref = plain_lm_loss_from_logits(model(x), y, 1e-4)
    assert out.ce.grad_fn is None
    assert torch.allclose(out.ce, ref.ce, atol=ATOL)


def test_return_hidden_is_what_the_head_multiplies():
    torch.manual_seed(0)
    model = GPT(tiny(logit_scale="rsqrt_d"))
    x, _ = batch(50)
    with torch.no_grad():
        h = model(x, return_hidden=True)
        assert h.shape == (3, 16, 32)
        assert torch.equal(model.logits(h), model(x))


def test_a_wrong_target_changes_the_loss():
    # The control: the chunked loss really reads the targets (a shifted target is a different loss).
    torch.manual_seed(0)
    model = GPT(tiny())
    x, y = batch(50)
    with torch.no_grad():
        a = model(x, targets=y).ce
        b = model(x, targets=(y + 1) % 50).ce
    assert abs(a.item() - b.item()) > 1e-3
