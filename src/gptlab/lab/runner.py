"""Run an ablation: every arm × seed on the same packed data, token budget and evaluation set.

Layout of the output folder::

    OUT/ablation.toml              the ablation file as run
    OUT/data/{harvest,curate,tokenizer,pack}/   built once (the demo size's chain), shared by every arm
                                   (a data ablation instead: see gptlab.lab.data for OUT/data/)
    OUT/runs/ARM/seed-S/config.toml             the arm's resolved config at that seed
    OUT/runs/ARM/seed-S/{train,eval}/           the ordinary train and eval stages
    OUT/results.json               per-run metrics, and the claims' verdicts

Seeds are paired: seed S is the same ``train.seed`` in every arm, so arms share their
initialisation stream and data order and the per-seed differences cancel that noise.
Every stage keeps its manifest, so rerunning skips finished runs and resumes an interrupted
one from its newest checkpoint: an ablation resumes arm by arm and seed by seed.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from gptlab.config import RunConfig, from_dict, load_config, to_dict, to_toml
from gptlab.console import log
from gptlab.data.curate import run_curate
from gptlab.data.executors import init_ray
from gptlab.errors import UserError
from gptlab.eval.bpb import make_bpb_eval, run_eval
from gptlab.lab.data import SharedData, build_chains, pack_tokens
from gptlab.lab.lengths import bpb_at_length
from gptlab.lab.spec import METRICS, Ablation
from gptlab.lab.verdict import judge
from gptlab.manifest import atomic_write, atomic_write_json
from gptlab.pack.build import run_pack
from gptlab.sources.harvest import run_harvest
from gptlab.tokenizer import run_tokenizer
from gptlab.train.loop import run_train

BASE_SEED = 1337      # seed k of an ablation is train.seed = BASE_SEED + k, in every arm


def build_data(size_preset: dict[str, Any], out: Path, workers: int = 2) -> SharedData:
    """The demo chain up to pack, once, into ``out/data`` (skipped when complete). The held-out
    set is the curate split, made before any arm trains and untouched by any arm's settings."""
    cfg = load_config(None, [], fragments=[size_preset])
    d = out / "data"
    run_harvest(cfg.data, d / "harvest", workers=workers)
    run_curate(cfg.data, d / "harvest", d / "curate", workers=workers)
    run_tokenizer(cfg.tokenizer, d / "curate", d / "tokenizer")
    run_pack(cfg.pack, d / "curate", d / "tokenizer", d / "pack")
    return SharedData(d / "pack", d / "curate" / "heldout", d / "tokenizer" / "tokenizer.json")


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / arm / f"seed-{seed}"


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One (arm, seed): train, then evaluate on the shared held-out set. Module-level so that
    a process pool can pickle it; ``threads`` caps torch's threads when runs share the cores."""
    if job.get("gpu") is not None:
        # one run per device: this process (fresh for each run) sees only its GPU, as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = str(job["gpu"])
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    cfg: RunConfig = from_dict(job["config"])
    run, data = Path(job["dir"]), SharedData(*map(Path, job["data"][:3]), job["probes"])
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / "config.toml", to_toml(cfg))
    eval_fn = make_bpb_eval(data.heldout, data.tokenizer_file, data.pack, cfg.eval) if cfg.train.eval_every else None
    summary = run_train(cfg.model, cfg.train, cfg.stability, data.pack, run / "train", resume=True,
                        tokenizer_file=data.tokenizer_file, eval_fn=eval_fn)
    result, extra = None, {}
    if (run / "train" / "checkpoints").is_dir():
        result = run_eval(cfg.eval, data.heldout, run / "train", data.pack, run / "eval")
        for name, folder in data.probes.items():      # memorisation probes (data ablations)
            r = run_eval(cfg.eval, Path(folder), run / "train", None, run / f"eval-probe-{name}")
            extra[f"bpb_{name}"] = r["overall"]["bpb"]
        if {"once", "repeated"} <= set(data.probes):
            extra["memorisation"] = extra["bpb_once"] - extra["bpb_repeated"]
        for factor in job.get("lengths", []):         # bpb at multiples of the training length (C9)
            bpb = bpb_at_length(run / "train", data.heldout, cfg.pack.seq_len, factor, cfg.eval,
                                run / "eval" / f"length-{factor}x.json")
            extra[f"bpb_{factor}x"] = bpb
    extra["pack_tokens"] = pack_tokens(data.pack)
    # every metric a claim may name is present (NaN where this run has no value for it)
    return {**dict.fromkeys(METRICS, math.nan), **collect(run, summary, result), **extra}


def collect(run: Path, summary: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    """The per-run metrics a claim can name (see spec.METRICS), from the stages' own files."""
    metrics_file, events_file = run / "train" / "metrics.jsonl", run / "train" / "events.jsonl"
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.exists() else []
    events = [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []
    logits = [r["max_logit"] for r in rows if "max_logit" in r]
    final = summary.get("final_loss", math.nan)
    final = final if final is not None and math.isfinite(final) else math.nan
    first = summary.get("first_loss")
    diverged = bool(summary.get("stopped")) or not math.isfinite(final) or (first is not None and final > first)
    return {
        "final_loss": final,
        "bpb": result["overall"]["bpb"] if result else math.nan,
        # mean over domains, each domain weighted alike (C3: a one-domain arm is judged on every domain)
        "bpb_domain_mean": (sum(d["bpb"] for d in result["domains"].values()) / len(result["domains"])
                            if result and result["domains"] else math.nan),
        "max_logit": max(logits) if logits else math.nan,
        "spikes": sum(e["event"] == "detect" for e in events),
        "rollbacks": sum(e["event"] == "rollback" for e in events),
        "skipped_batches": sum(e.get("batches", 0) for e in events if e["event"] == "skip"),
        "overflow_skips": sum(r.get("skipped_step", 0) for r in rows),
        "diverged": float(diverged),
        "tokens_per_s": summary.get("tokens_per_s", math.nan),
        "tokens": summary.get("tokens"), "steps": summary.get("steps"), "params": summary.get("params"),
        "precision": summary.get("precision"), "emulated": bool(summary.get("emulated")),
        "stopped": summary.get("stopped"),
    }


def plan_jobs(ab: Ablation, size_preset: dict[str, Any], seeds: int, out: Path,
              data: SharedData | dict[str, SharedData], threads: int) -> list[dict[str, Any]]:
    """One job per (arm, seed); ``data`` is one SharedData for all, or one per arm."""
    metrics = {c.metric for c in ab.claims}
    lengths = sorted(int(m[4:-1]) for m in metrics if m in ("bpb_1x", "bpb_2x"))
    jobs = []
    for k in range(seeds):        # seed-major: a partial ablation already has paired seeds
        for arm in ab.arms:
            cfg = ab.resolve(arm, size_preset, seed=BASE_SEED + k)
            d = data[arm] if isinstance(data, dict) else data
            jobs.append({"arm": arm, "seed": BASE_SEED + k, "config": to_dict(cfg),
                         "dir": str(run_dir(out, arm, BASE_SEED + k)), "threads": threads,
                         "data": [str(d.pack), str(d.heldout), str(d.tokenizer_file)], "probes": d.probes,
                         "lengths": lengths})
    return jobs


def check_budget(ab: Ablation, size_preset: dict[str, Any]) -> list[str]:
    """Warnings where arms differ in token budget (steps × batch, or a ramp): then a claim
    compares different amounts of training, which the report says."""
    budgets = {}
    for arm in ab.arms:
        t = ab.resolve(arm, size_preset).train
        budgets[arm] = (t.max_steps, t.batch_size, t.ramp)
    if len(set(budgets.values())) > 1:
        return [f"arms differ in token budget (max_steps, batch_size, ramp): {budgets}"]
    return []


def run_ablation(ab: Ablation, size_preset: dict[str, Any], out: str | Path, seeds: int | None = None,
                 workers: int = 1, data: SharedData | None = None) -> dict[str, Any]:
    """Every arm × seed, then the verdicts; returns (and writes) ``results.json``.

    ``data`` is the shared pack/held-out/tokenizer; by default it is built from the size preset."""
    out = Path(out)
    seeds = seeds or ab.seeds
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose a folder for the ablation")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "ablation.toml", ab.path.read_text(encoding="utf-8"))
    if data is None and ab.sets_data():
        cfgs = {arm: ab.resolve(arm, size_preset) for arm in ab.arms}
        data = build_chains(cfgs, ab.baseline, out, ab.path, ab.heldout_sources, workers=max(1, workers),
                            plant_copies=ab.plant_repeats)
    data = data or build_data(size_preset, out, workers=max(1, workers))
    for d in (data.values() if isinstance(data, dict) else [data]):
        if not (d.pack / "index.json").exists():
            raise UserError(f"{d.pack}: not a packed data folder (no index.json)")
    threads = max(1, (os.cpu_count() or 1) // max(1, workers)) if workers > 1 else 0
    jobs = plan_jobs(ab, size_preset, seeds, out, data, threads)
    log(f"ablate {ab.name}: {len(ab.arms)} arms × {seeds} seeds = {len(jobs)} runs → {out}")
    gpus, on_ray = torch.cuda.device_count(), bool(os.environ.get("RAY_ADDRESS"))
    if not on_ray and workers > 1 and gpus > 1:
        workers = min(workers, gpus)
        for i, job in enumerate(jobs):
            job["gpu"] = i % workers
    if on_ray:
        results = run_on_ray(jobs, workers)
    elif workers > 1:
        # spawn, not fork: a forked child inherits torch's thread pools mid-state; one process
        # per run, so a run's CUDA_VISIBLE_DEVICES is set before it touches a device
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 max_tasks_per_child=1) as pool:
            results = list(pool.map(_run_one, jobs))
    else:
        results = []
        for job in jobs:
            log(f"ablate {ab.name}: arm {job['arm']}, seed {job['seed']}")
            results.append(_run_one(job))
    runs = [{"arm": j["arm"], "seed": j["seed"], "pack": j["data"][0], **r} for j, r in zip(jobs, results)]
    equal_tokens_loss(out, runs, jobs)
    doc = {"name": ab.name, "baseline": ab.baseline, "arms": list(ab.arms), "seeds": seeds,
           "scale": scale_of(ab, size_preset), "warnings": check_budget(ab, size_preset),
           "overrides": {"common": ab.common, **{a: ab.arms[a] for a in ab.arms}},
           "description": ab.description, "planned": ab.planned,
           "runs": runs, "claims": verdicts(ab, runs)}
    atomic_write_json(out / "results.json", _finite(doc))
    return doc


def run_on_ray(jobs: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    """Every run as a Ray task on the cluster at RAY_ADDRESS: one GPU each where the cluster has
    GPUs (Ray sets the task's CUDA_VISIBLE_DEVICES), else one CPU slot per torch thread. The
    ablation folder must be on a filesystem every node sees (runs write their stages there)."""
    import ray  # noqa: PLC0415  (optional extra (ray), seconds to import)
    init_ray(workers)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_cpus=max(1, jobs[0]["threads"]) if jobs else 1, num_gpus=gpus)(_run_one)
    log(f"ablate: {len(jobs)} runs on the Ray cluster at {os.environ['RAY_ADDRESS']}"
        + (" (one GPU each)" if gpus else ""))
    return ray.get([remote.remote(job) for job in jobs])


def _loss_rows(run: Path) -> list[dict[str, Any]]:
    f = run / "train" / "metrics.jsonl"
    per_step: dict[int, dict[str, Any]] = {}
    for line in (f.read_text().splitlines() if f.exists() else []):
        rec = json.loads(line)
        per_step[rec["step"]] = rec                    # a rolled-back step: its replay wins
    return [per_step[k] for k in sorted(per_step)]


def equal_tokens_loss(out: Path, runs: list[dict[str, Any]], jobs: list[dict[str, Any]], last: int = 5) -> None:
    """``loss_at_equal_tokens``: each run's mean training loss over its last ``last`` steps at or
    below the fewest tokens any run of the ablation trained on (C11: a batch ramp trains fewer
    tokens in the same steps, so arms are compared where both have seen as much data)."""
    seq = {j["dir"]: j["config"]["pack"]["seq_len"] for j in jobs}
    curves = []
    for r, j in zip(runs, jobs):
        cum, pts = 0, []
        for rec in _loss_rows(Path(j["dir"])):
            cum += rec["batch_size"] * seq[j["dir"]]
            pts.append((cum, rec["loss"]))
        curves.append(pts)
    budget = min((c[-1][0] for c in curves if c), default=0)
    for r, pts in zip(runs, curves):
        within = [loss for t, loss in pts if t <= budget][-last:]
        r["loss_at_equal_tokens"] = sum(within) / len(within) if within else math.nan
        r["equal_tokens"] = budget


def scale_of(ab: Ablation, size_preset: dict[str, Any]) -> str:
    """A short description of the scale the verdicts hold at."""
    cfg = ab.resolve(ab.baseline, size_preset)
    m, t = cfg.model, cfg.train
    return (f"{m.n_layer} layers × {m.n_embd} wide, seq {cfg.pack.seq_len}, {t.max_steps} steps × "
            f"batch {t.batch_size}")


def verdicts(ab: Ablation, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim judged on the seeds both its arm and the baseline ran (paired)."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    out = []
    for c in ab.claims:
        ref = c.baseline or ab.baseline
        seeds = sorted(s for (a, s) in by if a == c.arm and (ref, s) in by)
        base = [by[(ref, s)][c.metric] for s in seeds]
        arm = [by[(c.arm, s)][c.metric] for s in seeds]
        v = judge(base, arm, c.direction, c.min_effect)
        out.append({"id": c.id, "claim": c.claim, "arm": c.arm, "baseline": ref, "metric": c.metric,
                    "baseline_values": base, "arm_values": arm, **v.as_dict()})
    return out


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (the report reads null as 'no value')."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
