"""Fault section 'cli': fuzzed TOML files, dotted overrides and flags for every subcommand.

The argparse tree of ``gptlab.cli.build_parser()`` is walked, and every subcommand gets random and
invalid flag values (nan, inf, huge and negative numbers, empty strings, missing, empty, garbage
and folder paths). Config files come from hypothesis: random keys, values, types and nesting over
the real config tree, then made invalid (cut, spliced, duplicated keys, non-UTF-8, a BOM).

Each case runs ``gptlab.cli.main(argv)`` in a forked child of this process (cheap after the
imports, and killable when valid random arguments start long work), with its stdout and stderr
captured at the file-descriptor level; a sample runs again through a real ``python -m gptlab.cli``.
A case passes when it exits 0, or exits 2 with no traceback and its last stderr line is one
``error:`` line (gptlab's own, or argparse's usage error). "internal error" lines, exit code 1
and tracebacks are failures. Inputs point at missing or tiny scratch files, so that no case
trains or curates for real; the cases run inside the section's scratch folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gptlab
from gptlab.config import RunConfig
from gptlab.selftest.table import Context, Row

# Commands the fuzzer never runs: itself (recursion), and those whose valid arguments start
# minutes of work on the embedded corpus (they get an invalid override that stops them first).
SKIP = {("selftest", "faults")}
NEEDS_STOP = {("demo",), ("data", "harvest")}
NUMBERS = ("0", "-1", "-3", "1", "2", "nan", "NaN", "inf", "-inf", "1e309", "-1e309", "1e-320",
           "99999999999999999999999999", "0x10", "1_000", "3.5", "abc", "", " ", "1e3")
WORDS = ("", " ", "x", "auto", "cpu", "cuda", "hf", "gpt2", "small", "-", "--", "ñ", "a,b,,c", "a\nb", "\x7f",
         "=", "key=value", "../../etc", "💥", "none")
PATHY = re.compile(r"out|input|data|checkpoint|config|tokenizer|heldout|pack|train|test|model|positives|"
                   r"negatives|answers|path|from|pool|ablation|run|tasks")
OK_RC = (0, 2, 3)


def _cli():
    """``gptlab.cli``, looked up when the section runs: the CLI mounts this package, and no
    library module imports the CLI at import time."""
    return importlib.import_module("gptlab.cli")   # 3: `gptlab train` stopped by its stability guard


# ----------------------------------------------------------------------------- the argparse tree

@dataclass
class Command:
    path: tuple[str, ...]
    options: list[argparse.Action]
    positionals: list[argparse.Action]


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Command]:
    """Every runnable (sub)command of the tree, with its flags."""
    out: list[Command] = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    opts = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    pos = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    if path and (not subs or not subs[0].required):
        out.append(Command(path, opts, pos))
    for sp in subs:
        for name, child in sp.choices.items():
            out += walk(child, (*path, name))
    return out


def config_keys(obj: Any = None, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the config tree with their default values."""
    obj = RunConfig() if obj is None else obj
    keys: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            keys.update(config_keys(v, f"{prefix}{f.name}."))
        else:
            keys[f"{prefix}{f.name}"] = v
    return keys


# ----------------------------------------------------------------------------- scratch inputs

def scratch_files(root: Path) -> dict[str, list[str]]:
    """Tiny or broken things to point flags at, so that no case does real work."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    (root / "tiny.jsonl").write_text('{"text": "one small document about rivers."}\n{"text": "a"}\n')
    (root / "labels.jsonl").write_text('{"text": "good", "label": "a"}\n{"text": "bad", "label": "b"}\n')
    (root / "bad.toml").write_text("[train\nlr = \n")
    (root / "latin1.toml").write_bytes("[train]\nname = 'caf\xe9'\n".encode("latin-1"))
    (root / "index.json").write_text("{not json")
    (root / "answers.yaml").write_text("task: [unclosed\n")
    (root / "emptydir").mkdir(exist_ok=True)
    (root / "fake_ckpt").mkdir(exist_ok=True)
    (root / "fake_ckpt" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    (root / "fake_ckpt" / "manifest.json").write_text("[]")
    existing = [str(root / n) for n in ("empty.txt", "garbage.bin", "tiny.jsonl", "labels.jsonl", "bad.toml",
                                        "latin1.toml", "index.json", "answers.yaml", "emptydir", "fake_ckpt")]
    return {"in": existing + [str(root / "missing"), str(root / "missing.jsonl"), "", ".", "/", "/dev/null"],
            "out": [str(root / "garbage.bin"), str(root / "emptydir"), ""]}


# ----------------------------------------------------------------------------- running one case

@dataclass
class Result:
    rc: int | None
    stderr: str
    seconds: float


def run_forked(argv: list[str], scratch: Path, timeout: float) -> Result:
    """``gptlab.cli.main(argv)`` in a forked child: real exit code, stderr at the fd level."""
    err_path, out_path = scratch / ".stderr", scratch / ".stdout"
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:   # the child: never returns
        rc = 70
        try:
            os.setpgid(0, 0)
            fd_in = os.open(os.devnull, os.O_RDONLY)
            fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd_in, 0)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            sys.stdin = open(0, closefd=False)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            os.chdir(scratch)
            try:
                rc = _cli().main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            except BaseException:  # noqa: BLE001  (escaped main: print as Python would)
                traceback.print_exc()
                rc = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc if isinstance(rc, int) else 1)
    deadline = t0 + timeout
    status = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)   # the child and any workers it started
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return Result(None, _read(err_path), time.monotonic() - t0)
        time.sleep(0.005)
    rc = os.waitstatus_to_exitcode(status)
    return Result(rc, _read(err_path), time.monotonic() - t0)


def run_subprocess(argv: list[str], scratch: Path, timeout: float) -> Result:
    src = str(Path(gptlab.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "gptlab.cli", *argv], cwd=scratch, env=env, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return Result(None, (e.stderr or b"").decode("utf-8", "replace"), time.monotonic() - t0)
    return Result(p.returncode, p.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def _read(p: Path) -> str:
    try:
        return p.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


ERROR_LINE = re.compile(r"^gptlab(?: [\w-]+)*: error: \S")


def verdict(r: Result) -> str | None:
    """None when the case kept the contract, else what went wrong."""
    if r.rc is None:
        return None   # timed out: valid arguments started real work (counted apart)
    if "Traceback (most recent call last)" in r.stderr:
        return f"traceback (exit {r.rc}): {_last_lines(r.stderr)}"
    if "internal error" in r.stderr:
        return f"internal error (exit {r.rc}): {_last_lines(r.stderr)}"
    if r.rc not in OK_RC:
        return f"exit {r.rc}: {_last_lines(r.stderr)}"
    if r.rc == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if not lines or not ERROR_LINE.match(lines[-1]):
            return f"exit 2 without a one-line error: {_last_lines(r.stderr)}"
    return None


def _last_lines(s: str, n: int = 2) -> str:
    return " | ".join(ln.strip() for ln in s.strip().splitlines()[-n:])[:300]


@dataclass
class Tally:
    cases: int = 0
    bad: int = 0
    errors: int = 0       # exit 2, one line
    ok: int = 0           # exit 0
    timeouts: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, argv: list[str], r: Result) -> None:
        self.cases += 1
        why = verdict(r)
        if why is not None:
            self.bad += 1
            if len(self.failures) < 8:
                self.failures.append(f"gptlab {' '.join(map(_quote, argv))}: {why}")
        elif r.rc is None:
            self.timeouts += 1
        elif r.rc == 2:
            self.errors += 1
        else:
            self.ok += 1

    def row(self, check: str, note: str = "") -> Row:
        extra = f"{self.ok} ran, {self.errors} one-line errors" + (f", {self.timeouts} timed out" if self.timeouts else "")
        return Row("cli", check, self.cases, self.bad, "tracebacks / bad exits", ok=self.ok + self.errors,
                   ok_what="kept the contract", note=f"{extra}{'; ' + note if note else ''}", failures=self.failures)


def _quote(a: str) -> str:
    return a if a and re.fullmatch(r"[\w./=,:+-]+", a) else json.dumps(a)


# ----------------------------------------------------------------------------- argv generators

class Fuzzer:
    def __init__(self, rng: random.Random, scratch: Path):
        self.rng, self.scratch = rng, scratch
        self.files = scratch_files(scratch / "inputs")
        self.keys = config_keys()
        self.n_out = 0

    def out_dir(self) -> str:
        if self.rng.random() < 0.15:
            return self.rng.choice(self.files["out"])
        self.n_out += 1
        return str(self.scratch / "outs" / f"o{self.n_out}")

    def value(self, a: argparse.Action) -> str:
        r = self.rng
        name = a.dest
        if a.choices is not None and r.random() < 0.7:
            return str(r.choice(list(a.choices)))
        if name == "out" or name.endswith("_out"):
            return self.out_dir()
        if a.type in (int, float) or (a.type is None and not PATHY.search(name) and r.random() < 0.6):
            return r.choice(NUMBERS) if r.random() < 0.8 else str(r.choice([r.randint(-10**6, 10**6), r.random()]))
        if PATHY.search(name) or r.random() < 0.5:
            return r.choice(self.files["in"])
        return r.choice(WORDS + NUMBERS)

    def values(self, a: argparse.Action) -> list[str]:
        if a.nargs == 0:
            return []
        if a.nargs in ("+", "*"):
            return [self.value(a) for _ in range(self.rng.randint(1, 3))]
        if isinstance(a.nargs, int):
            return [self.value(a) for _ in range(a.nargs)]
        return [self.value(a)]

    def override(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.1:
            return r.choice(["=", "key", "train.", ".lr=1", "train..lr=1", "train.lr==3", "=3", "train.lr",
                             "a.b.c.d.e=1", "train.lr=", "model=3", "train=1", "model.preset=nope", "x" * 300 + "=1"])
        key = r.choice(list(self.keys)) if roll < 0.85 else r.choice(["train.nope", "nope.lr", "model.n_layer.x",
                                                                       "data.recipe.steps", "Train.lr"])
        default = self.keys.get(key)
        if isinstance(default, bool):
            pool = ["true", "false", "yes", "1", "nan", ""]
        elif isinstance(default, (int, float)):
            pool = list(NUMBERS) + [str(default), str(-default if default else 1), repr(default * 10**12)]
        elif isinstance(default, list):
            pool = ["[]", "[1,2]", '["a"]', "[", "a,b", "nan"]
        else:
            pool = list(WORDS) + [str(default), "nan"]
        return f"{key}={r.choice(pool)}"

    def flags(self, cmd: Command) -> list[str]:
        """A random argv for one subcommand: required flags (mostly), random others, random values."""
        r = self.rng
        argv = list(cmd.path)
        for a in cmd.options:
            flag = r.choice(a.option_strings)
            if flag == "--debug":
                continue
            if (a.required and r.random() < 0.95) or r.random() < 0.3:
                argv += [flag, *self.values(a)]
            if r.random() < 0.02:
                argv += [flag]   # a flag without its value
        for a in cmd.positionals:
            if a.dest == "overrides":
                argv += [self.override() for _ in range(r.choice([0, 0, 1, 2]))]
            elif a.nargs in ("?", "*") and r.random() < 0.3:
                continue
            else:
                argv += self.values(a)
        if r.random() < 0.05:
            argv.insert(r.randrange(len(argv) + 1), r.choice(["--nope", "-x", "--", "--help=3", "--out="]))
        if cmd.path in NEEDS_STOP:
            argv.append("zz_unknown.key=1")
        return argv


# ----------------------------------------------------------------------------- TOML files

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def to_toml(data: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items())
              for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(top + tables) + "\n"


def toml_strategy(keys: dict[str, Any]):
    """hypothesis: config-shaped TOML (real sections and keys, random values and types, nesting),
    and the ways a TOML file breaks."""
    from hypothesis import strategies as st  # noqa: PLC0415  (optional test extra)
    scalar = st.one_of(st.booleans(), st.integers(), st.integers(-10**30, 10**30), st.floats(),
                       st.text(max_size=20), st.sampled_from([0, -1, 1, 0.5, "auto", "cpu", "cuda", ""]))
    value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                         max_leaves=8)
    sections: dict[str, list[str]] = {}
    for k in keys:
        sec, _, rest = k.partition(".")
        sections.setdefault(sec, []).append(rest)
    names = sorted(sections)
    section = st.sampled_from(names + ["nope", "Model"]).flatmap(
        lambda s: st.tuples(st.just(s), st.dictionaries(
            st.sampled_from(sections.get(s, ["x"]) + ["unknown_key"]),
            st.one_of(value, st.sampled_from([keys.get(f"{s}.{k}") for k in sections.get(s, [])] or [0])),
            max_size=5)))
    doc = st.one_of(
        st.lists(section, max_size=4).map(dict),
        st.dictionaries(st.sampled_from(names + ["top"]), value, max_size=3),   # `model = 3`
    ).map(to_toml).map(lambda s: s.encode("utf-8", "surrogatepass"))

    def breaks(data: bytes, how: str, r) -> bytes:
        if how == "ok" or not data:
            return data
        i = r.randrange(len(data) + 1)
        return {"cut": data[:i], "splice": data[:i] + r.choice([b"[", b"=", b'"', b"\n[[", b"]]", b"\x00", b"\xff"])
                + data[i:], "dup": data + data, "latin1": data + "\ncaf\xe9 = 1\n".encode("latin-1"),
                "bom": b"\xef\xbb\xbf" + data, "deep": b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n" + data}[how]

    return st.one_of(
        st.builds(breaks, doc, st.sampled_from(["ok", "ok", "cut", "splice", "dup", "latin1", "bom", "deep"]),
                  st.randoms(use_true_random=False)),
        st.binary(max_size=200))


# ----------------------------------------------------------------------------- the section

def _hosts(f: Fuzzer) -> list[list[str]]:
    """Commands that read a config, then fail fast on a missing input when the config is valid."""
    miss = str(f.scratch / "inputs" / "missing")
    return [["data", "pack", "--input", miss, "--tokenizer", miss, "--out", "o"],
            ["train", "--data", miss, "--out", "o"],
            ["tokenizer", "train", "--input", miss, "--out", "o"],
            ["plan"]]


def run(ctx: Context) -> list[Row]:
    from hypothesis import HealthCheck, Phase, given, settings  # noqa: PLC0415  (optional test extra)
    from hypothesis import seed as hseed  # noqa: PLC0415  (optional test extra)

    rng = random.Random(ctx.seed)
    scratch = ctx.work.resolve()
    f = Fuzzer(rng, scratch)
    commands = [c for c in walk(_cli().build_parser()) if c.path not in SKIP]
    n_flags, n_over, n_toml, n_sub = (6, 60, 60, 2) if ctx.quick else (20, 150, 150, 4)
    timeout = 20.0 if ctx.quick else 30.0
    rows: list[Row] = []
    samples: list[list[str]] = []

    flags = Tally()
    for cmd in commands:
        for _ in range(n_flags):
            argv = f.flags(cmd)
            flags.add(argv, run_forked(argv, scratch, timeout))
            if rng.random() < 0.1:
                samples.append(argv)
    rows.append(flags.row(f"random flags for every subcommand ({len(commands)})"))

    over = Tally()
    hosts = _hosts(f)
    for i in range(n_over):
        argv = [*rng.choice(hosts), *(f.override() for _ in range(rng.randint(1, 3)))]
        over.add(argv, run_forked(argv, scratch, timeout))
        if i % 20 == 0:
            samples.append(argv)
    rows.append(over.row("dotted overrides (wrong types, unknown keys, nan/inf, huge, empty)"))

    toml = Tally()
    counter = iter(range(10**9))

    @hseed(ctx.seed)
    @settings(max_examples=n_toml, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(toml_strategy(f.keys))
    def toml_case(data: bytes) -> None:
        path = scratch / "configs" / f"c{next(counter)}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        argv = [*rng.choice(_hosts(f)), "--config", str(path)]
        toml.add(argv, run_forked(argv, scratch, timeout))
        if toml.cases % 40 == 1:
            samples.append(argv)

    toml_case()
    rows.append(toml.row("fuzzed TOML config files (hypothesis)"))

    sub = Tally()
    rng.shuffle(samples)
    for argv in samples[:n_sub]:
        sub.add(argv, run_subprocess(argv, scratch, 120.0))
    rows.append(sub.row("the same through a real `python -m gptlab.cli`"))
    return rows
