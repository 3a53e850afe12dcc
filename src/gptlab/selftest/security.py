"""Fault section 'security': pickles named as weights never run; paths never write outside the run.

A pickle whose ``__reduce__`` creates a marker file is put in every place a loader looks: a
checkpoint's weights, optimizer and RNG files, its tokenizer and state, a Hugging Face folder's
``pytorch_model.bin`` (alone, and beside valid safetensors), a classifier's model file, a pack's
unigram counts. The checkpoint's manifest is re-signed to match, as an attacker who can write the
file can also write its checksum. Each consumer is run; the marker must never appear. The source
is also searched for deserialisers that can run code (``torch.load``, ``pickle.load``,
``allow_pickle=True``...).

Paths: source names, document ids, sources and domains with ``../..`` and absolute paths,
and symlinks planted in an output folder, must not make any write land outside it.
"""
from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from gptlab.faultpoint import ENV
from gptlab.manifest import atomic_write_json, file_checksum, read_manifest
from gptlab.selftest.runs import MODEL, TRAIN, Result, World, damaged, gptlab, snapshot
from gptlab.selftest.table import Context, Row


class _Payload:
    """Unpickling this creates ``marker``: proof that loading a file ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def torch_pickle(path: Path, marker: Path) -> None:
    torch.save({"weight": _Payload(marker)}, path)


def raw_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))


def npy_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.array([_Payload(marker)], dtype=object), allow_pickle=True)


def npz_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, weights=np.array([_Payload(marker)], dtype=object))


def resign(stage_dir: Path) -> None:
    """Rewrite a manifest's checksums to match the files now there (what an attacker would do)."""
    m = read_manifest(stage_dir)
    for rel in m["outputs"]:
        p = stage_dir / rel
        if p.exists():
            m["outputs"][rel] = {**m["outputs"][rel], "checksum": file_checksum(p), "bytes": p.stat().st_size}
    atomic_write_json(stage_dir / "manifest.json", m)


UNSAFE = re.compile(r"torch\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|joblib|weights_only\s*=\s*False|"
                    r"dill\.|cloudpickle\.load|use_safetensors\s*=\s*False")


def run(ctx: Context) -> list[Row]:
    world = World.shared(ctx)
    s = _Security(ctx, world)
    rows = [s.static_row()]
    rows += s.pickle_rows()
    rows += s.path_rows()
    return rows


class _Security:
    def __init__(self, ctx: Context, world: World):
        self.ctx, self.world, self.logs = ctx, world, ctx.work / "logs"
        self.n = 0

    def box(self) -> Path:
        self.n += 1
        b = self.ctx.work / f"case-{self.n:03d}"
        b.mkdir(parents=True)
        return b

    def run(self, argv: list, timeout: float = 300) -> Result:
        return gptlab(argv, self.ctx.work, self.logs, timeout=timeout)

    # ------------------------------------------------------------------ source
    def static_row(self) -> Row:
        root = Path(__file__).resolve().parents[1]
        hits = []
        for p in sorted(root.rglob("*.py")):
            if "selftest" in p.parts:
                continue
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if UNSAFE.search(code):
                    hits.append(f"{p.relative_to(root.parent)}:{i}: {line.strip()[:100]}")
        n_files = sum(1 for p in root.rglob("*.py") if "selftest" not in p.parts)
        return Row("security", "source: deserialisers that can run code", n_files, len(hits), "call sites",
                   note="torch.load, pickle.load(s), allow_pickle=True, joblib, weights_only=False, dill",
                   failures=hits)

    # ------------------------------------------------------------------ pickles
    def pickle_rows(self) -> list[Row]:
        gen = lambda ck: ["generate", "--checkpoint", ck, "--prompt", "In the", "--max-new-tokens", "4"]  # noqa: E731
        cases = [
            # (check, what to copy, file to poison inside it, how, commands to run on it)
            ("checkpoint model.safetensors", "run", "train/checkpoints/LAST/model.safetensors", torch_pickle,
             ["generate", "export", "eval"]),
            ("checkpoint model.safetensors (raw pickle)", "run", "train/checkpoints/LAST/model.safetensors",
             raw_pickle, ["generate", "export"]),
            ("checkpoint model.safetensors", "killed", "checkpoints/LAST/model.safetensors", torch_pickle, ["train"]),
            ("checkpoint optimizer.safetensors", "killed", "checkpoints/LAST/optimizer.safetensors", torch_pickle,
             ["train"]),
            ("checkpoint rng.safetensors", "killed", "checkpoints/LAST/rng.safetensors", torch_pickle, ["train"]),
            ("checkpoint tokenizer.json", "run", "train/checkpoints/LAST/tokenizer.json", raw_pickle,
             ["generate"]),
            ("checkpoint state.json / config.json", "run", "train/checkpoints/LAST/config.json", raw_pickle,
             ["generate"]),
            ("HF folder: pytorch_model.bin only", "hf", "pytorch_model.bin", torch_pickle, ["import"]),
            ("HF folder: pytorch_model.bin beside model.safetensors", "hf", "pytorch_model.bin", torch_pickle,
             ["import"]),
            ("HF folder: model.safetensors", "hf", "model.safetensors", torch_pickle, ["import"]),
            ("classifier model file", "classifier", "classifier.npz", npz_pickle, ["curate"]),
            ("pack unigram.npy", "run", "pack/unigram.npy", npy_pickle, ["eval-pack"]),
        ]
        if self.ctx.quick:
            cases = [c for i, c in enumerate(cases) if i in (0, 7, 11)]
        rows = []
        for check, base, rel, poison, consumers in cases:
            ran = code_ran = tracebacks = 0
            failures, notes = [], set()
            for consumer in consumers:
                box = self.box()
                marker = box / "MARKER-code-ran"
                root = self._copy(base, box)
                target = root / rel.replace("LAST", self._last(root, base))
                if check.endswith("only"):
                    (root / "model.safetensors").unlink()
                poison(target, marker)
                self._resign(root, base, target)
                r = self.run(self._argv(consumer, root, box, gen))
                ran += 1
                if marker.exists():
                    code_ran += 1
                    failures.append(f"{consumer}: the pickle in {rel} ran ({r.short()})")
                notes.add("refused" if r.one_line_error else ("ran safely" if r.rc == 0 else f"rc {r.rc}"))
                if r.traceback:
                    tracebacks += 1
                    failures.append(f"{consumer}: traceback ({r.short()})")
            rows.append(Row("security", f"pickle as {check}", ran, code_ran + tracebacks, "code run or tracebacks",
                            ok=ran - code_ran, ok_what="never unpickled",
                            note=f"{'/'.join(consumers)}: {', '.join(sorted(notes))}", failures=failures))
        return rows

    def _copy(self, base: str, box: Path) -> Path:
        w = self.world
        if base == "run":
            for stage in ("curate", "tokenizer", "pack", "train"):
                shutil.copytree(getattr(w, stage), box / "run" / stage)
            return box / "run"
        if base == "killed":
            if not hasattr(self, "_killed"):
                self._killed = self.ctx.work / "killed-train"
                r = gptlab(self._train_argv(self._killed), self.ctx.work, self.logs,
                           env={ENV: "checkpoint-renamed#3"})
                if r.rc != -9:
                    raise RuntimeError(f"selftest: the run to be killed after its third checkpoint was not: {r.short()}")
            shutil.copytree(self._killed, box / "killed")
            return box / "killed"
        if base == "hf":
            r = self.run(["export", "--checkpoint", w.train, "--out", box / "hf"])
            if r.rc != 0:
                raise RuntimeError(f"selftest: export failed: {r.short()}")
            return box / "hf"
        if base == "classifier":
            lines = w.corpus.read_text().splitlines()
            (box / "pos.jsonl").write_text("\n".join(lines[::2]) + "\n")
            (box / "neg.jsonl").write_text("\n".join(lines[1::2]) + "\n")
            r = self.run(["data", "classifier", "train", "--positives", box / "pos.jsonl", "--negatives",
                          box / "neg.jsonl", "--out", box / "classifier"])
            if r.rc != 0:
                raise RuntimeError(f"selftest: classifier train failed: {r.short()}")
            return box / "classifier"
        raise ValueError(base)

    def _last(self, root: Path, base: str) -> str:
        folder = root / "train" / "checkpoints" if base == "run" else root / "checkpoints"
        cks = sorted(folder.glob("step-*")) if folder.is_dir() else []
        return cks[-1].name if cks else "LAST"

    def _resign(self, root: Path, base: str, target: Path) -> None:
        for d in [target.parent, target.parent.parent]:
            if read_manifest(d) is not None and any((d / rel).resolve() == target.resolve()
                                                    for rel in read_manifest(d)["outputs"]):
                resign(d)
        if base == "run":          # the train stage lists the final checkpoint's files too
            resign(root / "train")

    def _train_argv(self, out: Path) -> list:
        return ["train", "--data", self.world.pack, "--out", out, *MODEL, *TRAIN]

    def _argv(self, consumer: str, root: Path, box: Path, gen) -> list:
        w = self.world
        if consumer == "generate":
            return gen(root)
        if consumer == "export":
            return ["export", "--checkpoint", root, "--out", box / "export"]
        if consumer == "eval":
            return ["eval", "--checkpoint", root, "--heldout", w.curate, "--out", box / "eval"]
        if consumer == "eval-pack":
            return ["eval", "--checkpoint", root / "train", "--heldout", w.curate, "--pack", root / "pack",
                    "--out", box / "eval"]
        if consumer == "train":
            return self._train_argv(root)
        if consumer == "import":
            return ["import", "--input", root, "--out", box / "imported"]
        if consumer == "curate":
            recipe = box / "recipe.toml"
            recipe.write_text(f'[[steps]]\ntype = "classifier"\nmodel = "{root}"\n')
            return ["data", "curate", "--input", w.corpus, "--out", box / "curated", "--recipe", recipe]
        raise ValueError(consumer)

    # ------------------------------------------------------------------ paths
    def path_rows(self) -> list[Row]:
        rows = []
        checks = [("harvest: data.sources with ../.. and absolute names", self._harvest_names),
                  ("curate: ids, sources, domains with ../.. and absolute paths", self._curate_names),
                  ("train: a symlink planted in --out", self._planted_link),
                  ("curate rerun: its output subfolder replaced by a symlink", self._replaced_subfolder)]
        if self.ctx.quick:
            checks = checks[1:3]
        for check, fn in checks:
            box = self.box()
            out = box / "a" / "b" / "c" / "out"
            outside = box / "outside"
            outside.mkdir()
            (outside / "precious.txt").write_text("keep me\n")
            argv = fn(box, out, outside)
            before = {k: v for k, v in snapshot(box).items() if not (box / k).is_relative_to(out)}
            r = self.run(argv)
            after = {k: v for k, v in snapshot(box).items() if not _inside(box / k, out)}
            escaped = damaged(before, after) + [f"{k} written" for k in after if k not in before]
            rows.append(Row("security", f"paths: {check}", 1, len(escaped) + r.traceback, "writes outside, tracebacks",
                            ok=int(not escaped), ok_what="contained",
                            note="refused" if r.one_line_error else (f"rc {r.rc}" if r.rc else "ran"),
                            failures=escaped[:5] + ([f"traceback: {r.short()}"] if r.traceback else [])))
        return rows

    def _harvest_names(self, box: Path, out: Path, outside: Path):
        names = json.dumps(["../../../../outside/escaped", str(box / "outside" / "abs-escaped"), "bible"])
        return ["data", "harvest", "--out", out, f"data.sources={names}", "data.max_docs_per_source=2"]

    def _curate_names(self, box: Path, out: Path, outside: Path):
        bad = ["../../../../outside/escaped", str(outside / "abs-escaped"), "..", "/", "a/../../b"]
        src = box / "input.jsonl"
        with open(src, "w") as f:
            for i, line in enumerate(self.world.corpus.read_text().splitlines()[:30]):
                rec = json.loads(line)
                name = bad[i % len(bad)]
                rec.update(id=f"{name}:{i}", source=name, domain=name)
                f.write(json.dumps(rec) + "\n")
        return ["data", "curate", "--input", src, "--out", out, "--recipe", "dedup"]

    def _planted_link(self, box: Path, out: Path, outside: Path):
        out.mkdir(parents=True)
        (out / "metrics.jsonl").symlink_to(outside / "precious.txt")
        (out / "checkpoints").symlink_to(outside)
        return self._train_argv(out)

    def _replaced_subfolder(self, box: Path, out: Path, outside: Path):
        r = self.run(["data", "curate", "--input", self.world.corpus, "--out", out, "--recipe", "dedup"])
        if r.rc != 0:
            raise RuntimeError(f"selftest: curate failed: {r.short()}")
        for p in (out / "train").iterdir():       # the victim: files named like the stage's own outputs
            shutil.copyfile(p, outside / p.name)
        shutil.rmtree(out / "train")
        (out / "train").symlink_to(outside)
        # A rerun with another config replaces the stage's outputs.
        return ["data", "curate", "--input", self.world.corpus, "--out", out, "--recipe", "dedup",
                      "data.docs_per_shard=7"]


def _inside(p: Path, folder: Path) -> bool:
    """Whether P lies inside FOLDER by its name (a symlink in FOLDER counts as inside, its target not)."""
    return p.is_relative_to(folder)
