"""`gptlab plan data`: core-hours per recipe step from measured throughput, the cluster for a
target wall time, the dominant step; and `plan data` does not break `plan key=value`."""
from __future__ import annotations

import argparse
import json
import math

import pytest

from gptlab.cli import main
from gptlab.data.recipe import GLOBAL_STEPS, STEP_TYPES, builtin_names, load_recipe
from gptlab.errors import UserError
from gptlab.plan.command import add_plan_parser
from gptlab.plan.data import load_throughput, plan_data


def parse(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="gptlab")
    add_plan_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(["plan", *argv])


def _throughput(tmp_path, **override) -> str:
    """Every step at 10 MB/s/core; the dedup reduces at 100 MB/s; ``override`` type=(map, reduce)."""
    steps = {t: {"map": {"mb_per_core_s": 10.0}} for t in STEP_TYPES}
    for t in GLOBAL_STEPS:
        steps[t]["reduce"] = {"mb_per_core_s": 100.0}
    for t, (m, r) in override.items():
        steps[t] = {"map": {"mb_per_core_s": m}, **({"reduce": {"mb_per_core_s": r}} if r else {})}
    path = tmp_path / "tp.json"
    path.write_text(json.dumps({"date": "2026-12-01", "machine": {"cpu": "test", "cores": 2},
                                "sample": {"docs": 10, "mb": 1.0}, "steps": steps}))
    return str(path)


def test_core_hours_cluster_and_dominant_step(tmp_path):
    tp = _throughput(tmp_path, minhash=(2.0, 50.0))
    plan = plan_data(1.0, "dedup", target_hours=10, throughput=tp, cores_per_node=16)
    by = {s.type: s for s in plan.steps}
    assert [s.type for s in plan.steps] == [s.type for s in load_recipe("dedup").steps]
    # 1 TB = 1e6 MB: 1e6 / 10 MB/s = 1e5 core-s = 27.8 core-hours
    assert by["normalize"].map_core_hours == pytest.approx(1e6 / 10 / 3600)
    assert by["minhash"].map_core_hours == pytest.approx(1e6 / 2 / 3600)
    assert by["minhash"].reduce_hours == pytest.approx(1e6 / 50 / 3600)
    assert by["normalize"].reduce_hours == 0
    assert plan.dominant.type == "minhash"
    serial = 1e6 / 50 / 3600 + 1e6 / 100 / 3600
    assert plan.serial_hours == pytest.approx(serial)
    assert plan.cores == math.ceil(plan.map_core_hours / (10 - serial))
    assert plan.nodes == math.ceil(plan.cores / 16)
    assert plan.wall_hours <= 10 and plan.map_core_hours / (plan.cores - 1) + serial > 10  # the smallest that fits


def test_more_input_or_less_time_needs_more_cores(tmp_path):
    tp = _throughput(tmp_path)
    base = plan_data(1.0, "default", 24, tp)
    assert plan_data(10.0, "default", 24, tp).map_core_hours == pytest.approx(10 * base.map_core_hours)
    assert plan_data(1.0, "default", 12, tp).cores > base.cores  # 8.3 h of it are serial reduces
    half = plan_data(1.0, "default", 24, tp, efficiency=0.5)
    assert half.cores == pytest.approx(2 * base.cores, abs=1)


def test_serial_reduce_longer_than_the_target_is_said(tmp_path):
    tp = _throughput(tmp_path, minhash=(10.0, 0.01))  # 1e6 MB at 0.01 MB/s: 27,778 h
    plan = plan_data(1.0, "dedup", 24, tp)
    assert plan.cores is None and plan.nodes is None
    assert any("no cluster size meets it" in n for n in plan.notes)


def test_missing_step_figure_is_one_line(tmp_path):
    path = tmp_path / "tp.json"
    path.write_text(json.dumps({"steps": {"normalize": {"map": {"mb_per_core_s": 1}}}}))
    with pytest.raises(UserError, match=r"no map figure for step type 'exact_dedup'.*rerun bench/data_throughput.py"):
        plan_data(1.0, "dedup", 24, str(path))
    path.write_text("{not json")
    with pytest.raises(UserError, match="is not JSON"):
        plan_data(1.0, "dedup", 24, str(path))
    with pytest.raises(UserError, match="--throughput: .*nope.json"):
        plan_data(1.0, "dedup", 24, str(tmp_path / "nope.json"))


def test_shipped_throughput_covers_every_builtin_recipe():
    data, where = load_throughput(None)
    assert data["machine"]["cores"] and data["date"] and data["sample"]["mix"]
    for name in builtin_names():
        plan = plan_data(1.0, name, 48)
        assert plan.steps and all(s.map_rate > 0 for s in plan.steps), name
        assert all((s.reduce_rate or 0) > 0 for s in plan.steps if s.type in GLOBAL_STEPS)


def test_cli_plan_data_json_and_table(tmp_path, capsys):
    tp = _throughput(tmp_path, minhash=(2.0, 50.0))
    args = parse("data", "--input-tb", "2", "--recipe", "dedup", "--target-hours", "48", "--throughput", tp, "--json")
    args.fn(args)
    out = json.loads(capsys.readouterr().out)
    assert out["dominant_step"] == "minhash" and out["input_tb"] == 2 and out["cores"] >= 1
    assert sum(s["share"] for s in out["steps"]) == pytest.approx(1.0)
    args = parse("data", "--input-tb", "2", "--recipe", "dedup", "--throughput", tp)
    args.fn(args)
    text = capsys.readouterr().out
    assert "dominant step: minhash" in text and "cores" in text and "nodes" in text


@pytest.mark.parametrize("flag,value,msg", [("--input-tb", "-1", "--input-tb: must be > 0"),
                                            ("--target-hours", "x", "--target-hours: expected a number"),
                                            ("--efficiency", "2", "--efficiency: must be in"),
                                            ("--cores-per-node", "1.5", "--cores-per-node: expected a whole")])
def test_cli_plan_data_flag_errors_are_one_line(tmp_path, flag, value, msg):
    argv = {"--input-tb": "1", "--throughput": _throughput(tmp_path)}
    argv[flag] = value
    args = parse("data", *[x for kv in argv.items() for x in kv])
    with pytest.raises(UserError, match=msg):
        args.fn(args)


def test_plan_data_does_not_break_plan_overrides():
    args = parse("model.preset=gpt3-175b", "--tokens", "300B")
    assert args.overrides == ["model.preset=gpt3-175b"] and args.fn.__name__ == "cmd_plan"
    args = parse("data", "--input-tb", "1")
    assert args.fn.__name__ == "cmd_plan_data" and not hasattr(args, "overrides")
    # `data` only as the first word: elsewhere it is still an override (and a bad one)
    args = parse("model.preset=gpt3-175b", "data")
    assert args.overrides == ["model.preset=gpt3-175b", "data"] and args.fn.__name__ == "cmd_plan"


def test_cli_main_routes_plan_data(tmp_path, capsys):
    assert main(["plan", "data", "--input-tb", "1", "--recipe", "dedup", "--throughput", _throughput(tmp_path),
                 "--json"]) in (0, None)
    assert json.loads(capsys.readouterr().out)["recipe"] == "dedup"
    with pytest.raises(SystemExit):
        main(["plan", "data"])  # --input-tb is required: argparse's usage line, exit 2
