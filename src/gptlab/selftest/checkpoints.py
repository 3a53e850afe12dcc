"""Fault section 'checkpoints': corrupt checkpoints, and see what train, generate, export and eval do.

Each corruption (truncation, a bit flipped in the safetensors header, one in the tensor data,
the weights file missing, a garbage manifest) is applied to a copy of a training run, three ways:

  newest    only the newest checkpoint is damaged: the command must say so, use the previous
            valid one and name it, and give exactly what that checkpoint gives
            (`train` resumes from it and must end bitwise equal to an uninterrupted run);
  direct    the damaged checkpoint folder is named itself: a one-line error, exit 2;
  all       every checkpoint is damaged: a one-line error, exit 2 (`train` starts over,
            says so, and must still end equal to the uninterrupted run).

"Garbage loaded" counts the cases where the command's result differs from what the valid
checkpoint gives, or where it succeeded on a checkpoint it should have refused.
"""
from __future__ import annotations

import json
import random
import shutil
import struct
from pathlib import Path

from gptlab.faultpoint import ENV
from gptlab.selftest.runs import MODEL, TRAIN, Result, World, gptlab, metrics_lines, tensor_bytes
from gptlab.selftest.table import Context, Row


def truncate(ck: Path, rng: random.Random) -> None:
    p = ck / "model.safetensors"
    data = p.read_bytes()
    p.write_bytes(data[:rng.randint(1, len(data) - 1)])


def _flip(p: Path, offset: int, rng: random.Random) -> None:
    data = bytearray(p.read_bytes())
    data[offset] ^= 1 << rng.randrange(8)
    p.write_bytes(bytes(data))


def flip_header(ck: Path, rng: random.Random) -> None:
    p = ck / "model.safetensors"
    (n,) = struct.unpack("<Q", p.read_bytes()[:8])
    _flip(p, rng.randrange(8, 8 + n), rng)


def flip_data(ck: Path, rng: random.Random) -> None:
    p = ck / "model.safetensors"
    (n,) = struct.unpack("<Q", p.read_bytes()[:8])
    _flip(p, rng.randrange(8 + n, p.stat().st_size), rng)


def missing(ck: Path, rng: random.Random) -> None:
    (ck / "model.safetensors").unlink()


def garbage_manifest(ck: Path, rng: random.Random) -> None:
    (ck / "manifest.json").write_bytes(bytes(rng.randrange(256) for _ in range(200)))


CORRUPTIONS = {"truncated weights": truncate, "bit flip in header": flip_header, "bit flip in data": flip_data,
               "weights file missing": missing, "garbage manifest": garbage_manifest}
QUICK = ("bit flip in data",)
PROMPT = "And God said"


def run(ctx: Context) -> list[Row]:
    rng = random.Random(ctx.seed)
    world = World.shared(ctx)
    c = _Checker(ctx, world)
    rows = []
    for name, corrupt in CORRUPTIONS.items():
        if ctx.quick and name not in QUICK:
            continue
        for consumer in ("train", "generate", "export", "eval"):
            cases, bad, ok, failures = 0, 0, 0, []
            modes = ("newest", "all") if consumer == "train" else ("newest", "direct", "all")
            for mode in (modes[:1] if ctx.quick and consumer == "train" else modes[:2] if ctx.quick else modes):
                cases += 1
                good, why = c.case(consumer, mode, corrupt, rng)
                ok += good
                if not good:
                    bad += 1
                    failures.append(f"{mode}: {why}")
            rows.append(Row("checkpoints", f"{name}: {consumer}", cases, bad, "garbage loaded or not refused",
                            ok=ok, ok_what="detected, valid one used+named", failures=failures))
    return rows


class _Checker:
    def __init__(self, ctx: Context, world: World):
        self.ctx, self.world, self.logs = ctx, world, ctx.work / "logs"
        self.n = 0
        cks = world.checkpoints()
        self.newest, self.previous = cks[-1], cks[-2]
        # What the previous valid checkpoint gives: the answers every fallback must reproduce.
        self.expect = {kind: self._result(kind, self.previous, self.ctx.work / f"expect-{kind}")[1]
                       for kind in ("generate", "export", "eval")}
        # A training run killed right after its third checkpoint (step 30 of 40).
        self.killed = ctx.work / "killed-train"
        r = gptlab(self._train_argv(self.killed), ctx.work, self.logs, env={ENV: "checkpoint-renamed#3"})
        if r.rc != -9:
            raise RuntimeError(f"selftest: the run to be killed after its third checkpoint was not: {r.short()}")

    def _train_argv(self, out: Path) -> list:
        return ["train", "--data", self.world.pack, "--out", out, *MODEL, *TRAIN]

    def _result(self, kind: str, checkpoint: Path, out: Path) -> tuple[Result, object]:
        """Run KIND on CHECKPOINT; its result and what it produced (None when it failed)."""
        if kind == "generate":
            r = gptlab(["generate", "--checkpoint", checkpoint, "--prompt", PROMPT, "--max-new-tokens", "12",
                        "--temperature", "0"], self.ctx.work, self.logs)
            return r, (r.output.split(PROMPT, 1)[-1] if r.rc == 0 else None)
        if kind == "export":
            r = gptlab(["export", "--checkpoint", checkpoint, "--out", out], self.ctx.work, self.logs)
            return r, (tensor_bytes(out / "model.safetensors") if r.rc == 0 else None)
        r = gptlab(["eval", "--checkpoint", checkpoint, "--heldout", self.world.curate, "--out", out],
                   self.ctx.work, self.logs)
        if r.rc != 0:
            return r, None
        res = json.loads((out / "eval.json").read_text())
        return r, {"overall": res["overall"], "domains": res["domains"]}

    def case(self, consumer: str, mode: str, corrupt, rng: random.Random) -> tuple[bool, str]:
        self.n += 1
        if consumer == "train":
            return self._train_case(mode, corrupt, rng)
        run = self.ctx.work / f"case-{self.n:03d}"
        shutil.copytree(self.world.train, run / "train")
        cks = sorted((run / "train" / "checkpoints").glob("step-*"))
        for ck in (cks if mode == "all" else cks[-1:]):
            corrupt(ck, rng)
        target = cks[-1] if mode == "direct" else run
        r, got = self._result(consumer, target, run / f"{consumer}-out")
        if mode != "newest":
            if r.one_line_error:
                return True, ""
            return False, f"not refused with a one-line error: {r.short()}"
        if r.rc != 0:
            return False, f"failed instead of falling back: {r.short()}"
        if self.previous.name not in r.output:
            return False, f"did not name the checkpoint it used ({self.previous.name}): {r.short()}"
        if got != self.expect[consumer]:
            return False, f"result differs from {self.previous.name}'s: the damaged checkpoint was loaded"
        return True, ""

    def _train_case(self, mode: str, corrupt, rng: random.Random) -> tuple[bool, str]:
        out = self.ctx.work / f"case-{self.n:03d}-train"
        shutil.copytree(self.killed, out)
        cks = sorted((out / "checkpoints").glob("step-*"))
        for ck in (cks if mode == "all" else cks[-1:]):
            corrupt(ck, rng)
        r = gptlab(self._train_argv(out), self.ctx.work, self.logs)
        if r.rc != 0:
            return False, f"resume failed: {r.short()}"
        want = "resumed from " + cks[-2].name if mode == "newest" else "starting from scratch"
        if want not in r.output or cks[-1].name not in r.output:
            return False, f"did not say which checkpoint it used (expected {want!r}): {r.short()}"
        ref = self.world.train
        final, ref_final = out / "checkpoints" / self.newest.name, ref / "checkpoints" / self.newest.name
        if not final.is_dir() or tensor_bytes(final / "model.safetensors") != tensor_bytes(
                ref_final / "model.safetensors"):
            return False, "final weights differ from the uninterrupted run's"
        if metrics_lines(out / "metrics.jsonl") != metrics_lines(ref / "metrics.jsonl"):
            return False, "metrics.jsonl differs from the uninterrupted run's"
        return True, ""
