"""Hugging Face export/import, proven by fp32 logits parity with transformers (offline, CPU)."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

import gptlab  # noqa: E402
from gptlab.checkpoint import save_checkpoint  # noqa: E402
from gptlab.cli import main  # noqa: E402
from gptlab.config import RunConfig, load_config, to_dict  # noqa: E402
from gptlab.interop import ExportRefused, export_hf, import_hf, to_hf_model  # noqa: E402
from gptlab.interop import adapters as adapters_mod  # noqa: E402
from gptlab.interop import hf as hf_mod  # noqa: E402
from gptlab.interop.hf import build_hf_config  # noqa: E402
from gptlab.interop.transforms import fuse_qkv_contiguous  # noqa: E402
from gptlab.model import GPT  # noqa: E402
from gptlab.model.gpt import alibi_slopes  # noqa: E402

ATOL = 1e-4
TINY = ["model.n_layer=2", "model.n_head=4", "model.n_embd=32", "model.vocab_size=96", "model.block_size=64",
        "model.init_std=0.2", "model.dropout=0.0"]

# (id, preset + overrides, expected HF architecture)
EXPORTABLE = [
    ("gpt3", ["model.preset=gpt3"], "GPT2LMHeadModel"),
    ("gpt3_untied_erf", ["model.preset=gpt3", "model.tie_embeddings=false", "model.mlp=gelu"], "GPT2LMHeadModel"),
    ("nanogpt_nobias", ["model.preset=nanogpt"], "GPT2LMHeadModel"),
    ("opt", ["model.preset=opt"], "OPTForCausalLM"),
    ("opt_nobias_untied", ["model.preset=opt", "model.bias=false", "model.tie_embeddings=false"], "OPTForCausalLM"),
    ("bloom", ["model.preset=bloom"], "BloomForCausalLM"),
    ("bloom_6_heads", ["model.preset=bloom", "model.n_head=6", "model.n_embd=48"], "BloomForCausalLM"),
    ("palm", ["model.preset=palm"], "CohereForCausalLM"),
    ("palm_half_rope_gqa", ["model.preset=palm", "model.rope_style=half", "model.n_kv_head=2"],
     "CohereForCausalLM"),
    ("palm_sequential", ["model.preset=palm_sequential"], "LlamaForCausalLM"),
    ("llama_gqa", ["model.preset=llama", "model.n_kv_head=2"], "LlamaForCausalLM"),
    ("llama_bias_tied", ["model.preset=llama", "model.bias=true", "model.tie_embeddings=true"], "LlamaForCausalLM"),
]


def native(overrides: list[str], seed: int = 0) -> GPT:
    cfg = load_config(None, [*overrides, *TINY])
    torch.manual_seed(seed)
    model = GPT(cfg.model).eval()
    with torch.no_grad():   # random norm gains and biases, so that a wrong map of them shows
        for p in model.parameters():
            if p.dim() < 2:
                p.add_(0.2 * torch.randn_like(p))
    return model


def ids(vocab: int = 96, T: int = 40) -> torch.Tensor:
    return torch.randint(0, vocab, (2, T), generator=torch.Generator().manual_seed(1))


def max_diff(model: GPT, hf) -> float:
    x = ids(model.config.vocab_size)
    with torch.no_grad():
        return (model(x) - hf(x).logits).abs().max().item()


@pytest.mark.parametrize("name, overrides, arch", EXPORTABLE, ids=[e[0] for e in EXPORTABLE])
def test_logits_parity(name, overrides, arch):
    model = native(overrides)
    hf = to_hf_model(model)
    assert type(hf).__name__ == arch
    with torch.no_grad():
        assert model(ids()).abs().max() > 2500 * ATOL   # logits large enough for parity to mean something
    assert max_diff(model, hf) < ATOL


@pytest.mark.parametrize("name, overrides, arch", EXPORTABLE, ids=[e[0] for e in EXPORTABLE])
def test_save_pretrained_round_trip_and_import_back(name, overrides, arch, tmp_path):
    model = native(overrides)
    hf = to_hf_model(model)
    hf.save_pretrained(tmp_path / "hf")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32, local_files_only=True)
    assert type(reloaded).__name__ == arch
    assert max_diff(model, reloaded.eval()) < ATOL
    # ...and back into gptlab: same logits again.
    back = gptlab.load_model(import_hf(tmp_path / "hf", tmp_path / "ck", block_size=64))
    x = ids()
    with torch.no_grad():
        assert (back(x) - model(x)).abs().max().item() < ATOL


# ----------------------------------------------------------------------------- negative controls

def test_control_gpt2_square_conv1d_not_transposed_loads_but_breaks():
    model = native(["model.preset=gpt3"])
    hf = to_hf_model(model)
    with torch.no_grad():
        for block in hf.transformer.h:          # c_proj is square: it loads either way
            block.attn.c_proj.weight.copy_(block.attn.c_proj.weight.t().clone())
    assert max_diff(model, hf) > 100 * ATOL


def test_control_opt_without_position_offset_breaks():
    model = native(["model.preset=opt"])
    hf = to_hf_model(model)
    with torch.no_grad():
        table = hf.model.decoder.embed_positions.weight
        table[: model.config.block_size] = model.embed_positions.weight   # rows 0.. instead of 2..
    assert max_diff(model, hf) > 100 * ATOL


def test_control_bloom_qkv_fused_contiguously_breaks(monkeypatch):
    model = native(["model.preset=bloom"])
    wrong = dataclasses.replace(adapters_mod.BLOOM, transforms=lambda c: [fuse_qkv_contiguous])
    monkeypatch.setitem(adapters_mod.ADAPTERS, "BloomForCausalLM", wrong)
    assert max_diff(model, to_hf_model(model)) > 100 * ATOL


@pytest.mark.parametrize("overrides, transform", [
    (["model.preset=palm_sequential"], "rope_interleaved_to_half"),          # -> Llama
    (["model.preset=palm", "model.rope_style=half"], "rope_half_to_interleaved"),  # -> Cohere
    (["model.preset=palm_sequential"], "fold_logit_scale"),                  # -> Llama, no logit scale
])
def test_control_skipping_a_transform_breaks_parity(overrides, transform):
    model = native(overrides)
    assert max_diff(model, to_hf_model(model)) < ATOL
    assert max_diff(model, to_hf_model(model, skip=(transform,))) > 100 * ATOL


def test_control_cohere_default_logit_scale_breaks():
    model = native(["model.preset=palm"])
    assert max_diff(model, to_hf_model(model, config_overrides={"logit_scale": 0.0625})) > 100 * ATOL


def test_control_unpermuted_half_rope_on_cohere_breaks_but_shapes_match():
    # The same weights under the other rotation convention are a different model.
    model = native(["model.preset=palm", "model.rope_style=half"])
    hf = to_hf_model(model, skip=("rope_half_to_interleaved",))
    assert all(p.shape == q.shape for p, q in zip(hf.parameters(), to_hf_model(model).parameters()))


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("overrides, words", [
    (["model.preset=glm"], "DeepNorm"),
    (["model.preset=gpt3", "model.placement=post"], "post-LN"),
    (["model.preset=palm", "model.block=parallel2"], "model.block='parallel2'"),
    (["model.preset=palm", "model.rope_fraction=0.5"], "rope_fraction"),
    (["model.preset=bloom", "model.embed_norm=false"], "embed_norm"),
])
def test_unrepresentable_configs_are_refused(overrides, words):
    with pytest.raises(ExportRefused, match=words):
        to_hf_model(native(overrides))


def test_opt_fixed_eps_is_refused_and_gpt2_takes_the_model_instead():
    model = native(["model.preset=opt", "model.norm_eps=1e-6"])
    with pytest.raises(ExportRefused, match="norm_eps"):
        to_hf_model(model, arch="opt")
    hf = to_hf_model(model)
    assert type(hf).__name__ == "GPT2LMHeadModel" and max_diff(model, hf) < ATOL


def test_forcing_a_mismatched_architecture_is_refused():
    with pytest.raises(ExportRefused, match="GPT2LMHeadModel.*alibi"):
        to_hf_model(native(["model.preset=bloom"]), arch="gpt2")
    # a ReLU model goes to OPT by default, and to GPT-2 when asked
    assert type(to_hf_model(native(["model.preset=opt"]), arch="gpt2")).__name__ == "GPT2LMHeadModel"


# ----------------------------------------------------------------------------- import -> export identity

def _random_hf_folder(arch: str, tmp_path, seed: int = 0):
    """An HF-initialised model folder, every tensor randomised (biases and gains included)."""
    overrides = {"GPT2LMHeadModel": ["model.preset=gpt3"], "OPTForCausalLM": ["model.preset=opt"],
                 "BloomForCausalLM": ["model.preset=bloom"], "LlamaForCausalLM": ["model.preset=llama",
                                                                                  "model.n_kv_head=2"],
                 "CohereForCausalLM": ["model.preset=palm"]}[arch]
    cfg = load_config(None, [*overrides, *TINY]).model
    hf_cfg = build_hf_config(adapters_mod.ADAPTERS[arch], cfg)
    torch.manual_seed(seed)
    hf = getattr(transformers, arch)(hf_cfg).float()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.2 * torch.randn_like(p))
    hf.save_pretrained(tmp_path / "source")
    return hf.eval(), tmp_path / "source"


@pytest.mark.parametrize("arch", sorted(adapters_mod.ADAPTERS))
def test_import_then_export_is_the_identity(arch, tmp_path):
    hf, source = _random_hf_folder(arch, tmp_path)
    ck = import_hf(source, tmp_path / "ck", block_size=64)
    out = export_hf(ck, tmp_path / "again")
    a, b = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(a) == sorted(b)
    if arch == "OPTForCausalLM":   # rows 0-1 of OPT's position table are never read (offset 2)
        key = "model.decoder.embed_positions.weight"
        a[key], b[key] = a[key][2:], b[key][2:]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ca, cb = (json.loads((d / "config.json").read_text()) for d in (source, out))
    assert ca["architectures"] == cb["architectures"] == [arch]
    shape_keys = {"vocab_size", "hidden_size", "n_embd", "n_layer", "num_hidden_layers", "n_head",
                  "num_attention_heads", "num_key_value_heads", "intermediate_size", "ffn_dim", "n_inner",
                  "activation_function", "hidden_act", "tie_word_embeddings", "logit_scale", "rope_parameters"}
    assert {k: ca.get(k) for k in shape_keys} == {k: cb.get(k) for k in shape_keys}
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, local_files_only=True).eval()
    x = ids()
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, reloaded(x).logits, atol=ATOL)


def test_import_refuses_what_gptlab_cannot_represent(tmp_path):
    hf_cfg = transformers.CohereConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=4, logit_scale=0.0625)
    transformers.CohereForCausalLM(hf_cfg).save_pretrained(tmp_path / "cohere")
    with pytest.raises(ExportRefused, match="logit_scale"):
        import_hf(tmp_path / "cohere", tmp_path / "ck")
    assert not (tmp_path / "ck").exists()


# ----------------------------------------------------------------------------- ALiBi against BLOOM's

@pytest.mark.parametrize("n_head", [4, 6, 12])
def test_alibi_slopes_match_transformers(n_head):
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor  # noqa: PLC0415  (optional extra (transformers), seconds to import)
    alibi = build_alibi_tensor(torch.ones(1, 2), n_head, torch.float32)   # [H, 1, 2] = slope * position
    assert torch.allclose(alibi[:, 0, 1], alibi_slopes(n_head), rtol=1e-6)


# ----------------------------------------------------------------------------- CLI on a real run

def test_cli_export_and_import_of_a_trained_checkpoint(trained_checkpoint, tmp_path, capsys):
    from transformers import AutoTokenizer  # noqa: PLC0415  (optional extra (transformers), seconds to import)

    out = tmp_path / "hf"
    assert main(["export", "--format", "hf", "--checkpoint", str(trained_checkpoint), "--out", str(out)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    x = torch.tensor([tok.encode("In the beginning God created the heaven and the earth.")])
    ours = gptlab.load_model(trained_checkpoint)
    with torch.no_grad():
        assert torch.allclose(ours(x), hf(x).logits, atol=ATOL)
    assert hf.config.eos_token_id == tok.eos_token_id

    back = tmp_path / "ck"
    assert main(["import", "--format", "hf", "--input", str(out), "--out", str(back)]) == 0
    with torch.no_grad():
        assert torch.allclose(gptlab.load_model(back)(x), ours(x), atol=ATOL)


def test_cli_refuses_a_deepnorm_checkpoint_with_a_clear_message(tmp_path, capsys):

    run_cfg = RunConfig()
    run_cfg.model = load_config(None, ["model.preset=glm", *TINY]).model
    ck = save_checkpoint(tmp_path / "ckpts", 0, GPT(run_cfg.model).state_dict(), None, to_dict(run_cfg))
    rc = main(["export", "--checkpoint", str(ck), "--out", str(tmp_path / "hf")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "DeepNorm" in err and "\n" not in err.strip()
    assert not (tmp_path / "hf").exists()


def test_transformers_bars_and_warnings_are_off_while_we_export_and_import(untrained_checkpoint_dir, tmp_path,
                                                                         monkeypatch):
    tl = transformers.utils.logging
    seen = []
    real_to_hf, real_save_tok = hf_mod.to_hf_model, hf_mod._save_tokenizer

    def watch(fn):
        def wrapped(*a, **k):
            seen.append((fn.__name__, tl.is_progress_bar_enabled(), tl.get_verbosity()))
            return fn(*a, **k)
        return wrapped
    monkeypatch.setattr(hf_mod, "to_hf_model", watch(real_to_hf))
    monkeypatch.setattr(hf_mod, "_save_tokenizer", watch(real_save_tok))
    tl.enable_progress_bar()
    before = tl.get_verbosity()
    export_hf(untrained_checkpoint_dir, tmp_path / "hf")
    assert [s[0] for s in seen] == ["to_hf_model", "_save_tokenizer"]
    assert all(not bars and level == tl.ERROR for _, bars, level in seen)
    assert tl.is_progress_bar_enabled() and tl.get_verbosity() == before      # restored afterwards
