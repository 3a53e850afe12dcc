"""The language-model loss: cross-entropy plus PaLM's z-loss, without [B, T, V] fp32 logits.

``plain_lm_loss`` is the reference: full logits, then ``F.cross_entropy``. At the GPT-2 shape
(B 16, T 1024, V 50304) those fp32 logits are 3.3 GB written and read several times, and
their gradient as much again. ``lm_loss`` computes the same numbers a chunk of rows at a
time and never holds more than one chunk of logits:

  forward, per chunk c:  logits_c = s·(h_c Wᵀ);  lse_c = logsumexp(logits_c);  p_c = exp(logits_c − lse_c)
      ce += Σ (lse_c − logits_c[y]);  z += Σ lse_c²;  and, when a gradient is wanted,
      PW_c = p_c W (rows of dL/dh),  PH += p_cᵀ h_c,  PLH += p_cᵀ (lse_c ⊙ h_c)   (rows of dL/dW)

The gradient is linear in the two upstream scalars (g_ce, g_z), so it is finished in backward
without touching the logits again:

  dL/d(h Wᵀ) = (s/N)·[ a ⊙ p − g_ce·onehot(y) ],  a = g_ce + 2·z_coef·g_z·lse
  dL/dh = (s/N)·[ a ⊙ PW − g_ce·W[y] ];   dL/dW = (s/N)·[ g_ce·PH + 2·z_coef·g_z·PLH − g_ce·Σ_y h ]

That is three matmuls over the vocabulary without z-loss (as many as autograd's forward plus
backward) and four with it, and the backward is exact for any (g_ce, g_z): ``ce`` and ``z``
stay separate losses that can be logged or weighted apart. Every target is a real token
(packed data has no padding), so the mean is over all B·T positions, as in the reference.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

# Elements of fp32 logits per chunk: 2^28 = 1 GiB; 5,336 rows at V = 50304.
CHUNK_ELEMENTS = 2 ** 28


class LMLoss(NamedTuple):
    ce: torch.Tensor          # mean cross-entropy (fp32 scalar, on the device)
    z: torch.Tensor           # z_coef · mean(log² Z) (fp32 scalar; zero when z_coef = 0)
    max_logit: torch.Tensor   # the largest logit (detached): drifts upwards without z-loss


def plain_lm_loss_from_logits(logits: torch.Tensor, targets: torch.Tensor, z_coef: float) -> LMLoss:
    """The reference on full logits: cross-entropy plus z_coef·log²Z, both in fp32."""
    logits = logits.float().reshape(-1, logits.size(-1))
    ce = F.cross_entropy(logits, targets.reshape(-1))
    z = z_coef * logits.logsumexp(-1).pow(2).mean() if z_coef else torch.zeros((), device=logits.device)
    return LMLoss(ce, z, logits.detach().amax())


def plain_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, z_coef: float = 0.0,
                  logit_scale: float = 1.0) -> LMLoss:
    """The model's head then the reference loss: what the trainer computed before ``lm_loss``."""
    logits = F.linear(hidden, weight)
    if logit_scale != 1.0:
        logits = logits * logit_scale
    return plain_lm_loss_from_logits(logits, targets, z_coef)


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype F.linear would compute in here (autocast's, when it is on for this device)."""
    if torch.is_autocast_enabled(t.device.type):
        return torch.get_autocast_dtype(t.device.type)
    return t.dtype


def default_chunk(vocab: int) -> int:
    return max(1, CHUNK_ELEMENTS // vocab)


class _ChunkedLMLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, y, z_coef: float, scale: float, chunk: int, dtype: torch.dtype):
        N = h.shape[0]
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hc_all, wc = h.to(dtype), w.to(dtype)
        ce = torch.zeros((), dtype=torch.float32, device=h.device)
        zs = torch.zeros((), dtype=torch.float32, device=h.device)
        mx = torch.full((), float("-inf"), dtype=torch.float32, device=h.device)
        lse_all = torch.empty(N, dtype=torch.float32, device=h.device)
        pw = torch.empty(N, w.shape[1], dtype=torch.float32, device=h.device) if want_h else None
        ph = torch.zeros(w.shape, dtype=torch.float32, device=h.device) if want_w else None
        plh = torch.zeros(w.shape, dtype=torch.float32, device=h.device) if want_w and z_coef else None
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            hc = hc_all[a:b]
            logits = hc @ wc.t()
            if scale != 1.0:
                logits = logits * scale                  # in the compute dtype, as the model's head does
            logits = logits.float()
            lse = logits.logsumexp(-1)
            lse_all[a:b] = lse
            ce += (lse - logits.gather(1, y[a:b, None]).squeeze(1)).sum()
            if z_coef:
                zs += lse.pow(2).sum()
            mx = torch.maximum(mx, logits.amax())
            if want_h or want_w:
                p = torch.exp(logits - lse[:, None]).to(dtype)   # the softmax, the chunk's only copy
                del logits
                if want_h:
                    pw[a:b] = p @ wc
                if want_w:
                    ph += p.t() @ hc
                    if z_coef:
                        plh += p.t() @ (hc * lse[:, None].to(dtype))
        ctx.save_for_backward(h, w, y, lse_all, pw, ph, plh)
        ctx.z_coef, ctx.scale = z_coef, scale
        ctx.mark_non_differentiable(mx)
        return ce / N, zs * (z_coef / N), mx

    @staticmethod
    def backward(ctx, g_ce, g_z, _g_max):
        h, w, y, lse, pw, ph, plh = ctx.saved_tensors
        k = ctx.scale / h.shape[0]
        two_z = 2.0 * ctx.z_coef
        zero = torch.zeros((), dtype=torch.float32, device=h.device)
        g_ce = zero if g_ce is None else g_ce.float()
        g_z = zero if g_z is None or not ctx.z_coef else g_z.float()
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            a = g_ce + two_z * g_z * lse                                   # [N]
            grad_h = (k * (a[:, None] * pw - g_ce * w[y].float())).to(h.dtype)
        if ctx.needs_input_grad[1]:
            gw = g_ce * ph
            if plh is not None:
                gw = gw + two_z * g_z * plh
            gw.index_add_(0, y, h.float() * -g_ce)                         # the one-hot term
            grad_w = (k * gw).to(w.dtype)
        return grad_h, grad_w, None, None, None, None, None


def lm_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, z_coef: float = 0.0,
            logit_scale: float = 1.0, chunk: int | None = None) -> LMLoss:
    """Cross-entropy and z-loss of the head ``weight`` [V, d] on ``hidden`` [..., d], chunked.

    Same values and gradients as ``plain_lm_loss`` (to rounding), but the logits exist one
    chunk of ``chunk`` rows at a time (default: about 1 GiB of fp32 logits per chunk)."""
    h = hidden.reshape(-1, hidden.shape[-1])
    y = targets.reshape(-1)
    chunk = chunk or default_chunk(weight.shape[0])
    ce, z, mx = _ChunkedLMLoss.apply(h, weight, y, float(z_coef), float(logit_scale), int(chunk),
                                     _compute_dtype(h))
    return LMLoss(ce, z, mx)
