"""Fault section 'files': every command with --out, pointed where it must not write.

Four targets per command: a non-empty folder gptlab did not make, ``.`` (run from a working
directory full of a user's files), another stage's output folder, and the command's own input.
Every file under the case's sandbox is hashed before and after: a file gone or changed is
destroyed (must be 0). A refusal should be one line with exit code 2; a command that instead
writes beside the user's files without touching them is not counted as bad, only noted.
Long-running commands (demo, ablate) that do not refuse are stopped after a few seconds:
the damage, if any, is done by then.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from gptlab.selftest.runs import Result, World, damaged, gptlab, snapshot, start
from gptlab.selftest.table import Context, Row

# A user's files: what a foreign folder or the working directory holds.
USER_FILES = {"notes.txt": "my notes\n", "thesis/chapter1.md": "# One\n", "data.csv": "a,b\n1,2\n",
              "manifest.json": '{"mine": true}\n', "model.safetensors": "not a model\n"}


@dataclass
class Command:
    name: str
    argv: list[str]                     # with {in:NAME} for the sandboxed inputs and {out} for the target
    inputs: list[str]                   # world items copied into the sandbox (see _inputs)
    own: str | None                     # the input (a sandbox item) that --out is pointed at, or None
    other: str = "curate"               # another stage's folder to point --out at
    timeout: float = 120
    quick: bool = False


TINY = ["data.max_docs_per_source=3", "data.max_mb_per_source=0.01"]
COMMANDS = [
    Command("data harvest", ["data", "harvest", "--out", "{out}", *TINY], [], None, timeout=60),
    Command("data curate", ["data", "curate", "--input", "{in:corpus_dir}", "--out", "{out}", "--recipe", "dedup"],
            ["corpus_dir"], "corpus_dir", other="pack", quick=True),
    Command("data classifier train", ["data", "classifier", "train", "--positives", "{in:pos}", "--negatives",
                                      "{in:neg}", "--out", "{out}"], ["pos", "neg"], "pos"),
    Command("tokenizer train", ["tokenizer", "train", "--input", "{in:curate}", "--out", "{out}",
                                "tokenizer.vocab_size=300"], ["curate"], "curate", other="pack"),
    Command("data pack", ["data", "pack", "--input", "{in:curate}", "--tokenizer", "{in:tokenizer}", "--out", "{out}",
                          "pack.seq_len=32"], ["curate", "tokenizer"], "curate", other="tokenizer"),
    Command("train", ["train", "--data", "{in:pack}", "--out", "{out}", "model.n_layer=1", "model.n_head=1",
                      "model.n_embd=32", "train.max_steps=4", "train.batch_size=4", "train.threads=1"],
            ["pack"], "pack", quick=True),
    Command("eval", ["eval", "--checkpoint", "{in:train}", "--heldout", "{in:curate}", "--out", "{out}"],
            ["train", "curate"], "train", other="pack", quick=True),
    Command("report", ["report", "{in:run}", "--out", "{out}"], ["run"], "run"),
    Command("export", ["export", "--checkpoint", "{in:train}", "--out", "{out}"], ["train"], "train", quick=True),
    Command("import", ["import", "--input", "{in:hf}", "--out", "{out}"], ["hf"], "hf", quick=True),
    Command("advise", ["advise", "--answers", "{in:answers}", "--no-interactive", "--out", "{out}"],
            ["answers"], "answers"),
    Command("advise bakeoff", ["advise", "bakeoff", "--train", "{in:labelled}", "--test", "{in:labelled_test}",
                               "--out", "{out}"], ["labelled", "labelled_test"], "labelled"),
    Command("ablate", ["ablate", "--config", "{in:ablation}", "--size", "tiny", "--out", "{out}"],
            ["ablation"], "ablation", timeout=30),
    Command("demo", ["demo", "--size", "tiny", "--out", "{out}"], [], None, timeout=30),
]
TARGETS = ("a foreign folder", ".", "another stage's folder", "its own input")


def run(ctx: Context) -> list[Row]:
    world = World.shared(ctx)
    extra = _extra_inputs(ctx.work / "inputs", world, random.Random(ctx.seed))
    rows = []
    n = 0
    for cmd in COMMANDS:
        if ctx.quick and not cmd.quick:
            continue
        cases = bad = refused = 0
        notes, failures = [], []
        for target in TARGETS:
            if target == "its own input" and cmd.own is None:
                continue
            n += 1
            cases += 1
            box = ctx.work / f"case-{n:03d}"
            r, damage, how = _case(ctx, cmd, target, box, world, extra)
            bad += len(damage)
            refused += r.one_line_error
            if not r.one_line_error:
                notes.append(f"{'.' if target == '.' else target.split()[-1]}: {how}")
            if damage or r.traceback:
                failures.append(f"--out {target}: {', '.join(damage[:4]) or 'traceback'} ({r.short()})")
                bad += r.traceback and not damage
        rows.append(Row("files", f"{cmd.name} --out", cases, bad, "files destroyed/modified", ok=refused,
                        ok_what="refused (1 line, exit 2)", note="; ".join(notes), failures=failures))
    return rows


def _case(ctx: Context, cmd: Command, target: str, box: Path, world: World, extra: dict[str, Path]):
    """One command at one target in a fresh sandbox: its result, the damage, what it did."""
    items = {}
    for name in cmd.inputs:
        src = extra.get(name) or getattr(world, name, None) or world.root
        dst = box / "in" / (src.name if name != "run" else "run")
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
        items[name] = dst
    cwd = box / "cwd"
    _user_files(cwd)
    if target == "a foreign folder":
        out = box / "foreign"
        _user_files(out)
    elif target == ".":
        out = Path(".")
    elif target == "another stage's folder":
        out = box / "stage" / cmd.other
        shutil.copytree(getattr(world, cmd.other), out)
    else:
        out = items[cmd.own]
    argv = [a.replace("{out}", str(out)) for a in cmd.argv]
    argv = [str(items[a[4:-1]]) if a.startswith("{in:") else a for a in argv]
    before = snapshot(box)
    p = start(argv, cwd, ctx.work / "logs")
    r = p.wait(cmd.timeout)
    how = "refused" if r.one_line_error else (f"rc {r.rc}" if r.rc is not None and r.rc >= 0
                                               else f"ran, stopped after {cmd.timeout:.0f} s")
    if r.rc == 0:
        how = "wrote beside the files"
    after = snapshot(box)
    damage = damaged(before, after)
    shutil.rmtree(box, ignore_errors=True)
    return r, damage, how


def _user_files(folder: Path) -> None:
    for rel, text in USER_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def _extra_inputs(root: Path, world: World, rng: random.Random) -> dict[str, Path]:
    """The inputs beside the tiny chain: a folder holding the corpus, classifier sets, a run
    folder, an HF export, advice answers, labelled JSONL and an ablation spec."""
    root.mkdir(parents=True, exist_ok=True)
    x: dict[str, Path] = {}
    x["corpus_dir"] = root / "corpus"
    x["corpus_dir"].mkdir()
    shutil.copyfile(world.corpus, x["corpus_dir"] / "corpus.jsonl")
    lines = world.corpus.read_text().splitlines()
    for name, part in (("pos", lines[::2]), ("neg", lines[1::2])):
        x[name] = root / name
        x[name].mkdir()
        (x[name] / f"{name}.jsonl").write_text("\n".join(part) + "\n")
    x["run"] = root / "run"
    for stage in ("curate", "tokenizer", "pack", "train"):
        shutil.copytree(getattr(world, stage), x["run"] / stage)
    r: Result = gptlab(["export", "--checkpoint", world.train, "--out", root / "hf"], root, root / "logs")
    if r.rc != 0:
        raise RuntimeError(f"selftest: export for the import case failed: {r.short()}")
    x["hf"] = root / "hf"
    x["answers"] = root / "answers.yaml"
    x["answers"].write_text("task: classification\n")
    for name, n in (("labelled", 40), ("labelled_test", 20)):
        x[name] = root / f"{name}.jsonl"
        with open(x[name], "w") as f:
            for i in range(n):
                label = rng.choice(["pos", "neg"])
                words = "good great fine" if label == "pos" else "bad awful poor"
                f.write(json.dumps({"text": f"{words} {words} item {i}", "label": label}) + "\n")
    x["ablation"] = root / "ablation.toml"
    x["ablation"].write_text('[ablation]\nname = "z"\nbaseline = "off"\nseeds = 1\nsize = "tiny"\n\n'
                             '[arms.off]\ntrain.z_loss = 0.0\n\n[arms.on]\ntrain.z_loss = 1e-4\n\n'
                             '[[claims]]\nid = "Z"\nclaim = "z-loss lowers the loss"\narm = "on"\n'
                             'metric = "final_loss"\ndirection = "lower"\n')
    return x
