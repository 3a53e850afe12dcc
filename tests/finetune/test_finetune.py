"""`gptlab finetune`: the output is a normal checkpoint that eval, generate and export take;
resume, LoRA, early stopping, Hugging Face bases, and one-line errors."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from gptlab.advise.labelled import read_examples
from gptlab.advise.lm import load_lm
from gptlab.api import load_model
from gptlab.checkpoint import find_checkpoint, load_weights
from gptlab.cli import main
from gptlab.finetune.config import FinetuneConfig
from gptlab.finetune.loop import encode_pairs
from gptlab.finetune.stage import run_finetune
from gptlab.finetune.templates import CLASSIFICATION, load_meta
from gptlab.manifest import verify
from gptlab.tokenizer import load_tokenizer

FAST = ["--threads", "1", "--device", "cpu", "--batch-size", "8"]


def _mc_task(test_file: Path, labels: list[str], out: Path) -> Path:
    """The fine-tuned classifier's own prompt as a multiple-choice `gptlab eval --tasks` file."""
    rows = [{"query": CLASSIFICATION.prompt.format(input=e.x), "choices": labels, "gold": labels.index(e.y)}
            for e in read_examples(test_file, "classification") if e.y in labels]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _acc(checkpoint: Path, task: Path, out: Path) -> float:
    assert main(["eval", "--checkpoint", str(checkpoint), "--tasks", str(task), "--out", str(out)]) == 0
    return json.loads((out / "tasks" / f"{task.stem}.json").read_text())["metrics"]["acc"]


def test_classification_finetune_is_a_checkpoint_that_eval_generate_and_export_take(
        domain_set, trained_checkpoint, tmp_path, capsys):
    train, test = domain_set
    out = tmp_path / "clf"
    argv = ["finetune", "--model", str(trained_checkpoint), "--train", str(train), "--task", "classification",
            "--out", str(out), "--max-steps", "60", "--lr", "2e-3", "--eval-every", "20", "--patience", "0",
            "--max-chars", "300", "--json", *FAST]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    labels = sorted({e.y for e in read_examples(train, "classification")})
    ck = Path(summary["checkpoint"])
    assert verify(out)[0] and verify(ck)[0] and find_checkpoint(out) == ck
    # The label set is recorded beside the weights, with the prompt template.
    meta = load_meta(ck)
    assert meta["labels"] == labels == summary["labels"] and meta["template"]["prompt"] == CLASSIFICATION.prompt
    assert json.loads((ck / "state.json").read_text())["labels"] == labels
    assert summary["final_loss"] < summary["first_loss"] and not (out / "work").exists()
    # `gptlab eval --tasks` takes it, and fine-tuning beat the base model and the majority label.
    task = _mc_task(test, labels, tmp_path / "domains.jsonl")
    tuned, base = _acc(out, task, tmp_path / "ev-tuned"), _acc(trained_checkpoint, task, tmp_path / "ev-base")
    gold = [json.loads(line)["gold"] for line in task.read_text().splitlines()]
    majority = Counter(gold).most_common(1)[0][1] / len(gold)
    assert tuned > base and tuned > majority + 0.1, (tuned, base, majority)
    # `gptlab generate` takes it: greedy decoding after the template answers with a label.
    text = read_examples(test, "classification")[0].x[:300]
    prompt = CLASSIFICATION.prompt.format(input=text)
    assert main(["generate", "--checkpoint", str(out), "--prompt", prompt, "--temperature", "0",
                 "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith(prompt)
    # `gptlab export --format hf` takes it, and the export computes the same logits.
    from transformers import AutoModelForCausalLM  # noqa: PLC0415  (optional extra (transformers), seconds to import)
    assert main(["export", "--format", "hf", "--checkpoint", str(out), "--out", str(tmp_path / "hf")]) == 0
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    ids = torch.randint(0, 500, (1, 12))
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, load_model(out)(ids), atol=1e-4)
    # A rerun of the same command skips the finished work.
    before = (out / "manifest.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "manifest.json").stat().st_mtime_ns == before


def _pairs(tmp_path: Path, n: int = 12) -> Path:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps({"input": f"say {w}", "target": w}) + "\n" for w in (words * 3)[:n]))
    return p


def _cfg(**kw) -> FinetuneConfig:
    return FinetuneConfig(**{"task": "generation", "max_steps": 24, "batch_size": 4, "lr": 2e-3, "eval_every": 8,
                             "patience": 0, "valid_fraction": 0.0, "device": "cpu", "threads": 1, **kw})


def test_a_killed_finetune_resumes_and_ends_where_an_uninterrupted_one_does(untrained_checkpoint_dir, tmp_path):
    data = _pairs(tmp_path)
    whole = run_finetune(_cfg(), untrained_checkpoint_dir, data, tmp_path / "whole")

    def kill(step: int) -> None:
        if step == 13:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_finetune(_cfg(), untrained_checkpoint_dir, data, tmp_path / "cut", on_step=kill)
    assert not verify(tmp_path / "cut")[0] and (tmp_path / "cut" / "work" / "checkpoints").is_dir()
    cut = run_finetune(_cfg(), untrained_checkpoint_dir, data, tmp_path / "cut")
    a = load_weights(Path(whole["checkpoint"]) / "model.safetensors")
    b = load_weights(Path(cut["checkpoint"]) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 25))


def test_early_stopping_keeps_the_best_validation_step(untrained_checkpoint_dir, tmp_path):
    data = _pairs(tmp_path)
    # lr 0: the validation loss never improves after the first evaluation, so patience 1 stops at the second.
    s = run_finetune(_cfg(lr=0.0, patience=1, max_steps=100), untrained_checkpoint_dir, data, tmp_path / "out",
                     valid_path=data)
    assert s["stopped_early"] and s["steps"] == 16 and s["best_step"] == 8
    assert Path(s["checkpoint"]).name == "step-00000008"


def test_lora_saves_the_adapters_and_a_merged_checkpoint(untrained_checkpoint_dir, tmp_path):
    pytest.importorskip("peft")
    s = run_finetune(_cfg(lora_rank=4, lr=1e-2), untrained_checkpoint_dir, _pairs(tmp_path), tmp_path / "out")
    adapter = load_weights(Path(s["adapter"]) / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert json.loads((Path(s["adapter"]) / "adapter_config.json").read_text())["r"] == 4
    base = load_weights(find_checkpoint(untrained_checkpoint_dir) / "model.safetensors")
    tuned = load_weights(Path(s["checkpoint"]) / "model.safetensors")
    assert tuned.keys() == base.keys()             # merged: plain weight names, no peft layers
    assert torch.equal(tuned["embed_tokens.weight"], base["embed_tokens.weight"])    # frozen
    assert not torch.equal(tuned["layers.0.self_attn.qkv_proj.weight"], base["layers.0.self_attn.qkv_proj.weight"])
    assert 0 < s["trainable_params"] < sum(v.numel() for v in base.values()) / 4
    load_model(tmp_path / "out")


def test_a_local_hugging_face_folder_fine_tunes_into_a_gptlab_checkpoint(hf_gpt2_dir, tmp_path):
    s = run_finetune(_cfg(max_steps=8), hf_gpt2_dir, _pairs(tmp_path), tmp_path / "out")
    assert s["format"] == "gptlab" and verify(s["checkpoint"])[0]
    model = load_model(tmp_path / "out")
    assert model.config.n_embd == 32 and (Path(s["checkpoint"]) / "tokenizer.json").exists()


def test_bad_files_and_flags_are_one_line_errors(untrained_checkpoint_dir, tmp_path, capsys):
    good = _pairs(tmp_path)
    base = ["finetune", "--model", str(untrained_checkpoint_dir), "--out", str(tmp_path / "o"), *FAST]
    bad = tmp_path / "bad.jsonl"
    cases = [('{"text": "a", "label": "x"}\n{"text": "b"}\n', "classification", "bad.jsonl:2: key 'label'"),
             ('{"input": "a", "target": "x"}\nnot json\n', "generation", "bad.jsonl:2: not JSON"),
             ('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n', "classification", "two different labels"),
             ('{"task": "t", "input": "a", "target": "x", "options": ["y", "z"]}\n', "instructions",
              "bad.jsonl:1: key 'target'")]
    for text, task, message in cases:
        bad.write_text(text)
        assert main([*base, "--train", str(bad), "--task", task]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    for flags, message in [(["--lora-rank", "-1"], "--lora-rank: -1 is below the minimum 0"),
                           (["--max-steps", "0"], "--max-steps: 0 is below the minimum 1"),
                           (["--template", "no input here"], "must contain {input}")]:
        assert main([*base, "--train", str(good), "--task", "generation", *flags]) == 2
        assert message in capsys.readouterr().err
    assert main([*base[:2], str(tmp_path / "nowhere"), *base[3:], "--train", str(good), "--task", "generation"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_foreign_or_other_runs_folder_is_refused(untrained_checkpoint_dir, tmp_path, capsys):
    data = _pairs(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    argv = ["finetune", "--model", str(untrained_checkpoint_dir), "--train", str(data), "--task", "generation",
            "--max-steps", "4", "--eval-every", "2", *FAST]
    assert main([*argv, "--out", str(foreign)]) == 2
    assert "not empty and was not made by gptlab" in capsys.readouterr().err
    assert main([*argv, "--out", str(foreign), "--force"]) == 0 and (foreign / "notes.txt").read_text() == "mine"
    # The same folder with other settings: refused (resume would mix two runs) unless --restart.
    assert main([*argv, "--out", str(foreign), "--lr", "1e-2"]) == 2
    assert "--restart" in capsys.readouterr().err
    assert main([*argv, "--out", str(foreign), "--lr", "1e-2", "--restart"]) == 0


def test_a_hugging_face_architecture_gptlab_cannot_represent_is_trained_with_transformers(tokenizer_dir, tmp_path):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM, PreTrainedTokenizerFast  # noqa: PLC0415  (optional extra (transformers), seconds to import)

    hf_dir = tmp_path / "neo"
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_dir / "tokenizer.json"),
                                  eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=tok.vocab_size, max_position_embeddings=64, hidden_size=32, num_layers=2,
                       num_heads=2, attention_types=[[["global"], 2]], bos_token_id=tok.eos_token_id,
                       eos_token_id=tok.eos_token_id)
    GPTNeoForCausalLM(cfg).save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    s = run_finetune(_cfg(max_steps=16), hf_dir, _pairs(tmp_path), tmp_path / "out")
    folder = Path(s["checkpoint"])
    assert s["format"] == "hf" and folder == (tmp_path / "out" / "model").resolve() and verify(tmp_path / "out")[0]
    assert load_meta(folder)["template"]["prompt"] == "Input: {input}\nOutput:"
    lm = load_lm(folder)
    assert lm.kind == "hf" and s["final_loss"] < s["first_loss"]


def test_a_long_prompt_ends_at_the_same_position_whatever_its_label(untrained_checkpoint_dir):
    """Cutting whole sequences from the left would put each label's first token at a position
    set by the label's length: a model with learned positions then learns the position."""
    tok = load_tokenizer(find_checkpoint(untrained_checkpoint_dir))
    prompt = CLASSIFICATION.prompt.format(input="word " * 200)
    labels = ["man", "changelog", "bible"]
    seqs = encode_pairs(tok, [(prompt, " " + lab) for lab in labels], 64)
    assert seqs.reserve == max(seqs.n_target) > 1 and len({len(s) - n for s, n in zip(seqs.ids, seqs.n_target)}) == 1
    assert all(len(s) <= 65 for s in seqs.ids)
