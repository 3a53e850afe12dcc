"""Optimizer updates without host syncs, and unchanged to the bit against the previous code."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gptlab.config import load_config
from gptlab.model import GPT, ModelConfig
from gptlab.model.gpt import resolve_compile
from gptlab.train.optim import Adafactor, adamw_impl, build_optimizer, param_groups


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


class OldAdafactor(torch.optim.Optimizer):
    """The previous update, verbatim, as the reference (it read the step with .item())."""

    def __init__(self, params, lr=1e-2, beta1=0.9, decay_exponent=0.8, clip_threshold=1.0, eps1=1e-30,
                 eps2=1e-3, weight_decay=0.0, weight_decay_lr_exponent=2.0):
        super().__init__(params, dict(lr=lr, beta1=beta1, decay_exponent=decay_exponent,
                                      clip_threshold=clip_threshold, eps1=eps1, eps2=eps2,
                                      weight_decay=weight_decay, weight_decay_lr_exponent=weight_decay_lr_exponent))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["v"] = torch.zeros_like(g)
                    st["m"] = torch.zeros_like(g)
                st["step"] += 1
                k = st["step"].item()
                beta2 = 1.0 - k ** (-group["decay_exponent"])
                v = st["v"]
                v.mul_(beta2).add_(g * g + group["eps1"], alpha=1.0 - beta2)
                u = g / v.sqrt()
                rms_u = u.pow(2).mean().sqrt()
                u.div_(torch.clamp(rms_u / group["clip_threshold"], min=1.0))
                pf = p.float()
                scale = lr * torch.clamp(pf.pow(2).mean().sqrt(), min=group["eps2"])
                m = st["m"]
                m.mul_(group["beta1"]).add_(u * scale, alpha=1.0 - group["beta1"])
                if group["weight_decay"]:
                    pf = pf * (1.0 - group["weight_decay"] * lr ** group["weight_decay_lr_exponent"])
                p.copy_((pf - m).to(p.dtype))


def tiny_model(seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(n_layer=2, n_head=4, n_kv_head=1, n_embd=32, vocab_size=50, block_size=24,
                           position="rope", mlp="swiglu", init_std=0.1))


def train(model: GPT, opt, steps=6, lrs=(1e-2, 5e-3)):
    g = torch.Generator().manual_seed(0)
    losses = []
    for s in range(steps):
        for group in opt.param_groups:
            group["lr"] = lrs[s % len(lrs)]
        x = torch.randint(0, 50, (4, 17), generator=g)
        out = model(x[:, :-1], targets=x[:, 1:], z_coef=1e-4)
        (out.ce + out.z).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.ce.item())
    return losses, [p.detach().clone() for p in model.parameters()]


def assert_same(a, b):
    assert a[0] == b[0]                                   # the loss sequence, bitwise
    assert all(torch.equal(x, y) for x, y in zip(a[1], b[1]))


def test_adafactor_is_bitwise_the_previous_update():
    m_old, m_new = tiny_model(), tiny_model()
    old = train(m_old, OldAdafactor(param_groups(m_old, 1.0), weight_decay=1.0))
    new = train(m_new, Adafactor(param_groups(m_new, 1.0), weight_decay=1.0))
    assert_same(new, old)
    # control: the comparison can fail (another beta1 is another trajectory)
    m_other = tiny_model()
    other = train(m_other, Adafactor(param_groups(m_other, 1.0), beta1=0.8, weight_decay=1.0))
    assert other[0] != old[0]


def test_adafactor_resumes_from_its_state_dict_bitwise():
    m_a = tiny_model()
    opt_a = Adafactor(param_groups(m_a, 0.0))
    full = train(m_a, opt_a, steps=6)
    m_b = tiny_model()
    opt_b = Adafactor(param_groups(m_b, 0.0))
    train(m_b, opt_b, steps=3)
    m_c = tiny_model()
    m_c.load_state_dict(m_b.state_dict())
    opt_c = Adafactor(param_groups(m_c, 0.0))
    opt_c.load_state_dict(opt_b.state_dict())
    assert all(st["step"].device.type == "cpu" for st in opt_c.state.values())
    g = torch.Generator().manual_seed(0)
    for _ in range(3):                                 # advance the data stream as run b did
        torch.randint(0, 50, (4, 17), generator=g)
    losses = []
    for s in range(3, 6):
        for group in opt_c.param_groups:
            group["lr"] = (1e-2, 5e-3)[s % 2]
        x = torch.randint(0, 50, (4, 17), generator=g)
        out = m_c(x[:, :-1], targets=x[:, 1:], z_coef=1e-4)
        (out.ce + out.z).backward()
        torch.nn.utils.clip_grad_norm_(m_c.parameters(), 1.0)
        opt_c.step()
        opt_c.zero_grad(set_to_none=True)
        losses.append(out.ce.item())
    assert losses == full[0][3:]
    assert all(torch.equal(x, y) for x, y in zip(m_c.parameters(), full[1]))


def meta_model() -> GPT:
    with torch.device("meta"):
        model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=20, block_size=8))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    return model


@pytest.mark.parametrize("kind", ["adafactor", "adamw"])
def test_the_update_never_reads_a_device_value(kind):
    # On the meta device a tensor has no data: any .item()/float()/bool() of a device value
    # raises, so an update that runs there does not wait on the device.
    model = meta_model()
    opt = build_optimizer(model, load_config(None, [f"train.optimizer={kind}"]).train)
    opt.step()
    opt.step()
    with pytest.raises(Exception):                      # control: a host read does fail there
        next(model.parameters()).sum().item()


def test_adafactor_keeps_its_step_on_the_cpu_whatever_the_default_device():
    model = meta_model()
    opt = Adafactor(param_groups(model, 0.0))
    with torch.device("meta"):                          # new tensors default to the device
        opt.step()
        opt.step()
    assert all(st["step"].device.type == "cpu" and float(st["step"]) == 2 for st in opt.state.values())
    old = OldAdafactor(param_groups(meta_model(), 0.0))
    with torch.device("meta"), pytest.raises(Exception):  # the old update read its step from the device
        old.step()


def test_adamw_is_foreach_on_cpu_and_bitwise_the_previous_default():
    m_old, m_new = tiny_model(), tiny_model()
    tcfg = load_config(None, ["train.optimizer=adamw", "train.weight_decay=0.1"]).train
    new_opt = build_optimizer(m_new, tcfg)
    assert new_opt.defaults["foreach"] is True and not new_opt.defaults.get("fused")
    # the previous build: torch's default, which on CPU is the per-tensor loop
    old_opt = torch.optim.AdamW(param_groups(m_old, 0.1), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2), eps=1e-8)
    assert_same(train(m_new, new_opt), train(m_old, old_opt))


def test_adamw_is_fused_when_every_parameter_is_on_cuda():
    cuda = SimpleNamespace(device=torch.device("cuda"))     # only the device is consulted
    assert adamw_impl([{"params": [cuda, cuda]}]) == {"fused": True}
    assert adamw_impl([{"params": [cuda]}, {"params": [torch.zeros(1)]}]) == {"foreach": True}
    assert adamw_impl([{"params": [torch.nn.Parameter(torch.zeros(2))]}]) == {"foreach": True}


def test_resolve_compile():
    assert resolve_compile("auto", "cuda") is True
    assert resolve_compile("auto", torch.device("cpu")) is False
    assert resolve_compile(True, "cpu") is True and resolve_compile(False, "cuda") is False
    assert resolve_compile("true", "cpu") is True and resolve_compile("false", "cuda") is False
    with pytest.raises(ValueError, match="compile"):
        resolve_compile("sometimes", "cpu")
