"""Small real inputs for each stage boundary, so that a test depends only on the stage it tests.

Each builder writes what one stage would hand to the next, from real text and without the
whole chain: curated shards (Bible chapters and standard-library docstrings and code),
a tokenizer trained by ``run_tokenizer``, a pack built by ``run_pack``, and a checkpoint
trained by ``run_train`` for a few steps (or saved untrained, where training is irrelevant).
The folders follow a run's layout (``curate/``, ``tokenizer/``, ``pack/``, ``train/``), so
commands that accept a run folder accept one of these too.

The session fixtures in ``tests/conftest.py`` call these once per test session.
"""
from __future__ import annotations

import os
import sysconfig
from contextlib import contextmanager
from pathlib import Path

import torch
import xxhash

from gptlab.checkpoint import latest_valid, save_checkpoint
from gptlab.config import RunConfig, load_config, to_dict
from gptlab.data.documents import Document, write_shard
from gptlab.manifest import write_manifest
from gptlab.model import GPT
from gptlab.pack.build import run_pack
from gptlab.sources.bible import bible_documents
from gptlab.sources.python import extract_prose
from gptlab.tokenizer import run_tokenizer
from gptlab.train.loop import run_train

# The tiny demo's sizes (gptlab/demos/tiny.toml), so thresholds tuned on it still mean the same.
VOCAB_SIZE = 1024
SEQ_LEN = 64
MODEL = ["model.n_layer=2", "model.n_head=2", "model.n_embd=64"]

# Standard-library modules with plenty of docstrings: the prose and code documents.
STDLIB_MODULES = [
    "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "configparser.py", "contextlib.py",
    "copy.py", "csv.py", "dataclasses.py", "datetime.py", "decimal.py", "difflib.py", "enum.py",
    "fnmatch.py", "fractions.py", "ftplib.py", "functools.py", "getopt.py", "gettext.py", "glob.py",
    "gzip.py", "heapq.py", "hmac.py", "imaplib.py", "inspect.py", "ipaddress.py", "logging/__init__.py",
    "mailbox.py", "netrc.py", "numbers.py", "operator.py", "optparse.py", "pathlib.py", "pickle.py",
    "pprint.py", "random.py", "sched.py", "secrets.py", "shlex.py", "shutil.py", "smtplib.py",
    "statistics.py", "string.py", "subprocess.py", "tarfile.py", "tempfile.py", "textwrap.py",
    "threading.py", "timeit.py", "typing.py", "uuid.py", "warnings.py", "weakref.py", "zipfile.py",
    "collections/__init__.py", "json/decoder.py", "json/encoder.py", "email/message.py", "http/client.py",
    "urllib/parse.py", "xml/dom/minidom.py", "unittest/case.py", "asyncio/tasks.py", "concurrent/futures/_base.py",
]
MAX_CHARS = 6000          # per document, so that one long module does not dominate the pack
HELDOUT_PER_DOMAIN = 6    # like data.eval_max_docs_per_domain in the tiny demo
HELDOUT_MAX_CHARS = 3000  # like data.eval_max_chars_per_doc in the tiny demo


@contextmanager
def one_thread():
    """Tiny models run fastest on one thread, and two threads thrash when the cores are shared;
    the process's thread count is put back afterwards (``train.threads`` sets it too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def corpus_documents(n_bible: int = 240, modules: list[str] = STDLIB_MODULES) -> list[Document]:
    """Real documents in three domains: Bible chapters (four translations, so near-duplicates),
    and for each standard-library module its docstrings and comments (prose) and its source (code)."""
    docs = list(bible_documents(n_bible))
    root = Path(sysconfig.get_paths()["stdlib"])
    for rel in modules:
        path = root / rel
        if not path.exists():      # a module this Python lacks: the others are enough
            continue
        source = path.read_text(encoding="utf-8")
        prose = extract_prose(source)
        meta = {"path": rel}
        if len(prose) > 200:
            docs.append(Document(f"stdlib-prose:{rel}", prose[:MAX_CHARS], "stdlib-prose", "prose", {**meta, "lang": "en"}))
        docs.append(Document(f"stdlib-code:{rel}", source[:MAX_CHARS], "stdlib-code", "code", {**meta, "lang": "python"}))
    return docs


def heldout_ids(docs: list[Document], per_domain: int = HELDOUT_PER_DOMAIN) -> set[str]:
    """A few documents per domain, whole groups at a time (one Bible chapter in every translation
    falls on one side), chosen by a hash so the split is stable."""
    groups: dict[str, dict[str, list[str]]] = {}
    for d in docs:
        groups.setdefault(d.domain, {}).setdefault(str(d.meta.get("group", d.id)), []).append(d.id)
    held: set[str] = set()
    for by_group in groups.values():
        taken = 0
        for g in sorted(by_group, key=lambda g: (xxhash.xxh64_intdigest(g.encode()), g)):
            if taken >= per_domain:
                break
            held.update(by_group[g])
            taken += len(by_group[g])
    return held


def write_curated(out: str | Path, docs: list[Document] | None = None, docs_per_shard: int = 200) -> Path:
    """A curate-like folder: ``train/train-*.jsonl.zst``, ``heldout/heldout.jsonl.zst`` and a
    complete manifest, as `gptlab data curate` leaves it (no recipe steps run)."""
    out = Path(out)
    docs = corpus_documents() if docs is None else docs
    held = heldout_ids(docs)
    train = [d for d in docs if d.id not in held]
    heldout = [Document(d.id, d.text[:HELDOUT_MAX_CHARS], d.source, d.domain, d.meta) for d in docs if d.id in held]
    outputs = []
    for k, start in enumerate(range(0, len(train), docs_per_shard)):
        rel = f"train/train-{k:05d}.jsonl.zst"
        write_shard(out / rel, train[start:start + docs_per_shard])
        outputs.append(rel)
    write_shard(out / "heldout" / "heldout.jsonl.zst", heldout)
    outputs.append("heldout/heldout.jsonl.zst")
    write_manifest(out, stage="curate", key="tests", outputs=outputs,
                   summary={"train_docs": len(train), "heldout_docs": len(heldout)})
    return out


def build_tokenizer(curated: str | Path, out: str | Path, overrides: list[str] = ()) -> Path:
    """`gptlab tokenizer train` on a curated folder (the tiny demo's vocabulary size)."""
    cfg = load_config(None, [f"tokenizer.vocab_size={VOCAB_SIZE}", *overrides])
    run_tokenizer(cfg.tokenizer, curated, out)
    return Path(out)


def pack_config(overrides: list[str] = ()):
    """The pack settings `build_pack` uses, for a test that packs again and compares."""
    return load_config(None, [f"pack.seq_len={SEQ_LEN}", *overrides]).pack


def build_pack(curated: str | Path, tokenizer: str | Path, out: str | Path, overrides: list[str] = ()) -> Path:
    """`gptlab data pack` of a curated folder with a tokenizer (the tiny demo's sequence length)."""
    run_pack(pack_config(overrides), curated, tokenizer, out)
    return Path(out)


TRAIN = ["train.max_steps=120", "train.batch_size=16", "train.lr=3e-3", "train.warmup_steps=15",
         "train.checkpoint_every=60", "train.log_every=10", "train.threads=1"]


def train_checkpoint(pack: str | Path, out: str | Path, overrides: list[str] = ()) -> Path:
    """A few steps of `gptlab train` on a pack (the tiny demo's model); returns the newest
    checkpoint folder (weights, config.json and, when the pack has a sibling tokenizer/, tokenizer.json)."""
    cfg = load_config(None, [*MODEL, *TRAIN, *overrides])
    tensorboard = os.environ.get("GPTLAB_TENSORBOARD")
    os.environ["GPTLAB_TENSORBOARD"] = "0"      # nothing here reads the event files
    try:
        with one_thread():
            run_train(cfg.model, cfg.train, cfg.stability, pack, out, resume=True)
    finally:
        if tensorboard is None:
            os.environ.pop("GPTLAB_TENSORBOARD")
        else:
            os.environ["GPTLAB_TENSORBOARD"] = tensorboard
    ck = latest_valid(Path(out) / "checkpoints")
    assert ck is not None, f"{out}: training wrote no checkpoint"
    return ck


def untrained_checkpoint(out: str | Path, tokenizer_file: str | Path | None = None, vocab_size: int = VOCAB_SIZE,
                         overrides: list[str] = (), seed: int = 0) -> Path:
    """A seeded, untrained tiny GPT saved as a step-0 checkpoint, for tests where training is irrelevant."""
    cfg = RunConfig()
    cfg.model = load_config(None, [*MODEL, f"model.vocab_size={vocab_size}", f"model.block_size={SEQ_LEN}",
                                   *overrides]).model
    torch.manual_seed(seed)
    return save_checkpoint(Path(out) / "checkpoints", 0, GPT(cfg.model).state_dict(), None, to_dict(cfg),
                           tokenizer_file=tokenizer_file)


def tiny_hf_gpt2(tokenizer_dir: str | Path, out: str | Path, n_positions: int = 64) -> Path:
    """A tiny random GPT-2 with a gptlab tokenizer, saved as a local Hugging Face folder."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: PLC0415  (optional extra (transformers), seconds to import)

    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(tokenizer_dir) / "tokenizer.json"),
                                  eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)
