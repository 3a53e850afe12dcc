"""Running gptlab the way a user does, but cheaply, and the tiny inputs the fault sections attack.

Every case is a real ``gptlab ...`` command: ``gptlab.cli.main(argv)`` in a process of its own,
with its own working directory, environment, stdout/stderr and exit code, so it can be
SIGKILLed at any moment like a user's run. Importing torch and gptlab takes seconds, and the
grid runs hundreds of commands, so the processes are forked from a server that imported
gptlab once (multiprocessing's forkserver, which never runs any torch code itself).

``World`` builds, once per section, the smallest chain that exercises the code: a JSONL of
Bible chapters (near-duplicates included), curate → tokenizer → pack → a few train steps.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from gptlab.sources.bible import bible_documents

# Seen by every command: no progress bars (the output is a file), no TensorBoard (slow to import,
# and nothing here reads it). ``GPTLAB_SELFTEST_KILL`` is set per case (gptlab.faultpoint).
BASE_ENV = {"GPTLAB_PROGRESS": "0", "GPTLAB_TENSORBOARD": "0"}

_CTX = None


def _context():
    global _CTX
    if _CTX is None:
        # Log lines unwrapped (rich wraps at 80 columns when the output is not a terminal), so that
        # a checkpoint's name is found in the output. The server and every command inherit it.
        os.environ["COLUMNS"] = "1000"
        # Under `python -m gptlab.cli` the server also runs the main module, which runpy then warns
        # is imported already: harmless, and noise in the table's output.
        os.environ["PYTHONWARNINGS"] = "ignore::RuntimeWarning:runpy"
        # The commands must run this very gptlab (a test puts a checkout's src/ first on sys.path
        # in-process only; the server is a fresh interpreter).
        here = str(Path(__file__).resolve().parents[2])
        os.environ["PYTHONPATH"] = os.pathsep.join([here] + [p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p and p != here])
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(["gptlab.cli"])
    return _CTX


def _child(argv: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    """In the forked process: become `gptlab ARGV` run from CWD, output to LOG."""
    os.chdir(cwd)
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from gptlab.cli import main  # noqa: PLC0415  (preloaded by the fork server: already imported)
    rc = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


@dataclass
class Result:
    argv: list[str]
    rc: int | None          # None: killed by us; -9 style values are signals
    output: str             # stdout and stderr together

    @property
    def one_line_error(self) -> bool:
        """Exit 2 with a `gptlab: error:` line and no traceback: how a refusal must look."""
        return (self.rc == 2 and "gptlab: error:" in self.output and "Traceback" not in self.output)

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output or "internal error" in self.output

    def short(self) -> str:
        last = [ln for ln in self.output.strip().splitlines() if ln.strip()][-1:] or [""]
        return f"gptlab {' '.join(self.argv)} → rc {self.rc}: {last[0][:200]}"


class Proc:
    """A running `gptlab` command (see :func:`start`)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: Path):
        self.argv, self.log = argv, log
        self.p = _context().Process(target=_child, args=(argv, str(cwd), {**BASE_ENV, **env}, str(log)))
        self.p.start()
        self.t0 = time.monotonic()

    def alive(self) -> bool:
        return self.p.is_alive()

    def kill(self) -> None:
        if self.p.is_alive():
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.join()

    def wait(self, timeout: float = 600) -> Result:
        self.p.join(timeout)
        if self.p.is_alive():
            self.kill()
        return Result(self.argv, self.p.exitcode, self.log.read_text(errors="replace") if self.log.exists() else "")


_n = 0


def start(argv: list[str], cwd: Path, logs: Path, env: dict[str, str] | None = None) -> Proc:
    global _n
    _n += 1
    logs.mkdir(parents=True, exist_ok=True)
    return Proc([str(a) for a in argv], cwd, env or {}, logs / f"{_n:05d}-{argv[0]}.log")


def gptlab(argv: list, cwd: Path, logs: Path, env: dict[str, str] | None = None, timeout: float = 600) -> Result:
    """Run `gptlab ARGV` from CWD to the end; its exit code and output."""
    return start(argv, cwd, logs, env).wait(timeout)


# ----------------------------------------------------------------------------- snapshots and comparisons

def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ROOT (symlinks by their target's name)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def damaged(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files of BEFORE that are gone or changed in AFTER (new files are not damage)."""
    return [f"{rel} {'destroyed' if rel not in after else 'modified'}" for rel, h in before.items()
            if after.get(rel) != h]


def tensor_bytes(path: Path) -> dict[str, bytes]:
    """The tensors of a safetensors file as raw bytes (dtype and shape included), header aside."""
    return {k: (str(v.dtype), tuple(v.shape), v.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            for k, v in load_file(str(path)).items()}


TIMING = ("tokens_per_s", "step_time_s", "mfu")   # wall-clock figures: differ between any two runs


def metrics_lines(path: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    rows = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rows.append({k: v for k, v in rec.items() if k not in TIMING})
    return rows


# ----------------------------------------------------------------------------- the tiny world

MODEL = ["model.n_layer=1", "model.n_head=1", "model.n_embd=32"]
TRAIN = ["train.max_steps=40", "train.batch_size=8", "train.checkpoint_every=10", "train.warmup_steps=5",
         "train.log_every=10", "train.threads=1", "train.precision=fp32", "train.keep_checkpoints=10"]


def write_corpus(path: Path, n_docs: int) -> Path:
    """A JSONL of Bible chapters, the same chapters in four translations (near-duplicates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for d in bible_documents(n_docs):
            f.write(json.dumps({"id": d.id, "text": d.text, "source": d.source, "domain": d.domain,
                                "meta": d.meta}, ensure_ascii=False) + "\n")
    return path


_WORLDS: dict[Path, World] = {}


class World:
    """The tiny chain a section attacks, built under ROOT by real commands:
    corpus.jsonl → curate/ → tokenizer/ → pack/ → train/ (checkpoints every 10 of 40 steps).
    Sections only read it (they copy what they damage), so one serves them all: a second
    build in the same place finds every stage complete. ``took`` holds each command's seconds."""

    def __init__(self, root: Path, n_docs: int = 80):
        self.root, self.logs = root, root / "logs"
        self.took: dict[str, float] = {}
        root.mkdir(parents=True, exist_ok=True)
        self.corpus = write_corpus(root / "corpus.jsonl", n_docs)
        self.curate = self._run(["data", "curate", "--input", self.corpus, "--out", root / "curate",
                                 "--recipe", "dedup", "--workers", "2"], root / "curate")
        self.tokenizer = self._run(["tokenizer", "train", "--input", self.curate, "--out", root / "tokenizer",
                                    "tokenizer.vocab_size=384"], root / "tokenizer")
        self.pack = self._run(["data", "pack", "--input", self.curate, "--tokenizer", self.tokenizer,
                               "--out", root / "pack", "pack.seq_len=32"], root / "pack")
        self.train = self._run(["train", "--data", self.pack, "--out", root / "train", *MODEL, *TRAIN],
                               root / "train")

    @classmethod
    def shared(cls, ctx) -> World:
        """The world beside the sections' folders (built once per selftest folder and process)."""
        root = ctx.work.parent / "world"
        if root not in _WORLDS:
            _WORLDS[root] = cls(root)
        return _WORLDS[root]

    def _run(self, argv: list, out: Path) -> Path:
        t0 = time.monotonic()
        r = gptlab(argv, self.root, self.logs)
        self.took[out.name] = time.monotonic() - t0
        if r.rc != 0:
            raise RuntimeError(f"selftest: building the tiny chain failed: {r.short()}")
        return out

    def checkpoints(self) -> list[Path]:
        return sorted((self.train / "checkpoints").glob("step-*"))
