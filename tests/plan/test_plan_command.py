"""`gptlab plan` from the command line: JSON that round-trips, tables, and one-line flag errors."""
from __future__ import annotations

import argparse
import json

import pytest

from gptlab.errors import UserError
from gptlab.plan.command import add_plan_parser, cmd_plan, plan_from_args
from gptlab.plan.gpus import GPUS


def parse(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="gptlab")
    add_plan_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(["plan", *argv])


BASE = ("model.preset=gpt3-175b", "model.vocab_size=50257", "--tokens", "300B", "--gpu", "A100-80G",
        "--gpus", "1024", "--mfu", "0.4", "--usd-per-gpu-hour", "1.5", "--goodput", "0.8")


def test_json_round_trips(capsys):
    args = parse(*BASE, "--json")
    args.fn(args)
    text = capsys.readouterr().out
    data = json.loads(text)
    assert json.loads(json.dumps(data)) == data
    assert data == json.loads(json.dumps(plan_from_args(args).to_json()))
    # The numbers are the plan's: FLOPs, days, cost and the layouts that fit.
    sched = data["schedule"]
    assert sched["wall_days"] == pytest.approx(sched["compute_days"] / 0.8)
    assert sched["cost_usd"] == pytest.approx(sched["gpu_hours"] * 1.5)
    assert sched["compute_days"] == pytest.approx(data["compute"]["model_flops"] / (1024 * 312e12 * 0.4) / 86400)
    mem = data["memory"]
    assert mem["recommended"] in mem["fitting"]
    by_name = {e["layout"]: e for e in mem["layouts"]}
    assert by_name["DDP×1024"]["verdict"] == "no" and by_name["FSDP×1024"]["verdict"] == "with AC"


def test_table_names_the_layouts(capsys):
    args = parse(*BASE)
    cmd_plan(args)
    out = capsys.readouterr().out
    for text in ("DDP×1024", "FSDP×1024", "with AC", "model FLOPs", "wall days", "recommended:", "$"):
        assert text in out


def test_list_gpus_with_sources(capsys):
    args = parse("--list-gpus", "--json")
    cmd_plan(args)
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(GPUS)
    assert {"A100-40G", "A100-80G", "H100-SXM", "H200", "B200", "TPU-v4"} <= set(GPUS)
    assert all(r["source"] and r["peak_bf16"] > 1e14 and r["memory"] > 3e10 for r in rows)


def test_mfu_from_a_json(tmp_path):
    direct = tmp_path / "bench.json"
    direct.write_text(json.dumps({"mfu": 0.41}))
    assert plan_from_args(parse(*BASE[:8], "--mfu-from", str(direct))).schedule.mfu == 0.41
    derived = tmp_path / "rates.json"
    derived.write_text(json.dumps({"tokens_per_s": 1000.0, "flops_per_token": 1e11, "peak_tflops": 312}))
    assert plan_from_args(parse(*BASE[:8], "--mfu-from", str(derived))).schedule.mfu == pytest.approx(1e14 / 312e12)


def test_config_file_and_defaults(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[model]\npreset = "gpt3-1.3b"\nvocab_size = 50304\n')
    p = plan_from_args(parse("--config", str(cfg), "--tokens", "26B"))
    assert p.inputs.model_name == "run" and p.schedule.gpu == "A100-80G" and p.schedule.n_gpus == 8
    assert 1.2e9 < p.compute.n_params < 1.5e9
    assert p.recommended is not None                          # 1.3B fits 8 × 80 GB
    assert plan_from_args(parse("model.preset=gpt3-1.3b", "--tokens", "1B")).notes[0].startswith(
        "model.vocab_size unset")


@pytest.mark.parametrize("argv, flag", [
    (("--gpu", "V100"), "--gpu"),
    (("--gpus", "0"), "--gpus"),
    (("--gpus", "2.5"), "--gpus"),
    (("--mfu", "40"), "--mfu"),
    (("--mfu", "fast"), "--mfu"),
    (("--goodput", "0"), "--goodput"),
    (("--usd-per-gpu-hour", "-1"), "--usd-per-gpu-hour"),
    (("--micro-batch", "0"), "--micro-batch"),
    (("--head-dim", "x"), "--head-dim"),
    (("--mfu", "0.4", "--tflops-per-gpu", "150"), "--tflops-per-gpu"),
    (("--tflops-per-gpu", "400"), "--tflops-per-gpu"),                # above an A100's 312 peak
    (("--published", "gpt4"), "--published"),
    (("--corpus-tokens", "lots"), "--corpus-tokens"),
    (("--mfu-from", "/nonexistent/bench.json"), "--mfu-from"),
])
def test_bad_flags_are_one_line_user_errors(argv, flag):
    args = parse("model.preset=gpt3-125m", "--tokens", "1B", *argv)
    with pytest.raises(UserError) as e:
        cmd_plan(args)
    msg = str(e.value)
    assert flag in msg and "\n" not in msg


@pytest.mark.parametrize("override", ["model.n_layerz=3", "n_layer"])
def test_bad_overrides_name_the_key(override):
    # Overrides are positional: they come before the flags, as in every gptlab command.
    with pytest.raises(UserError, match=override.split("=")[0]):
        cmd_plan(parse("model.preset=gpt3-125m", override, "--tokens", "1B"))


def test_bad_tokens_and_bench_files(tmp_path):
    with pytest.raises(UserError, match="--tokens"):
        cmd_plan(parse("model.preset=gpt3-125m", "--tokens", "many"))
    with pytest.raises(UserError, match="--tokens"):
        cmd_plan(parse("model.preset=gpt3-125m"))           # no budget at all
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="--mfu-from.*not JSON"):
        cmd_plan(parse("model.preset=gpt3-125m", "--tokens", "1B", "--mfu-from", str(bad)))
    keyless = tmp_path / "keyless.json"
    keyless.write_text(json.dumps({"tokens_per_s": 5}))
    with pytest.raises(UserError, match='--mfu-from.*"mfu"'):
        cmd_plan(parse("model.preset=gpt3-125m", "--tokens", "1B", "--mfu-from", str(keyless)))
    bad_peak = tmp_path / "bad_peak.json"
    bad_peak.write_text(json.dumps({"tokens_per_s": 5, "flops_per_token": 1e9, "peak_tflops": "fast"}))
    with pytest.raises(UserError, match="--mfu-from.*peak_tflops"):
        cmd_plan(parse("model.preset=gpt3-125m", "--tokens", "1B", "--mfu-from", str(bad_peak)))
    pct = tmp_path / "pct.json"
    pct.write_text(json.dumps({"mfu": 41}))
    with pytest.raises(UserError, match="0.41 for 41 %"):
        cmd_plan(parse("model.preset=gpt3-125m", "--tokens", "1B", "--mfu-from", str(pct)))
