"""Published large runs, as planner inputs, and the post's table of corpus size vs tokens seen.

These are the checks the planner is held to (tests/plan): its FLOPs for GPT-3 175B, OPT-175B
and PaLM 540B must land within 10 % of what their papers report. Each figure carries its
source; "the post" is J. Yang, "Why did all of the public reproduction of GPT-3 fail?" (2023).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gptlab.errors import UserError
from gptlab.plan.compute import parse_count

# The post's table: (pretraining corpus tokens, tokens seen during pretraining).
CORPUS_TOKENS: dict[str, tuple[float, float]] = {
    "palm": (780e9, 770e9),
    "gpt3": (500e9, 300e9),
    "opt": (180e9, 300e9),
    "bloom": (341e9, 366e9),
}
CORPUS_ALIASES = {"gpt-3": "gpt3", "gpt3-175b": "gpt3", "palm-540b": "palm", "opt-175b": "opt",
                  "bloom-176b": "bloom"}
CORPUS_SOURCE = "the post's table of corpus tokens vs tokens seen"


@dataclass(frozen=True)
class Published:
    name: str
    overrides: tuple[str, ...]           # dotted config overrides that give the model and batch
    tokens: float
    corpus: str                          # key of CORPUS_TOKENS
    gpu: str
    n_gpus: int
    head_dim: int | None = None
    mfu: float | None = None             # as published, when it was
    tflops_per_gpu: float | None = None  # a published per-GPU throughput instead of an MFU
    reported: dict[str, str] = field(default_factory=dict)   # what the run's authors said, with sources


PUBLISHED: dict[str, Published] = {p.name: p for p in (
    Published(
        "gpt3-175b", ("model.preset=gpt3-175b", "model.vocab_size=50257"), tokens=300e9, corpus="gpt3",
        # GPT-3 trained on V100s of a Microsoft cluster, count unpublished: plan it on the post's
        # "~1000 80G A100" instead.
        gpu="A100-80G", n_gpus=1024,
        reported={"hardware": "V100s, count not published (Brown et al. 2020, §2.3); planned on ~1000 A100-80G",
                  "total_flops": "3.14e23 (Brown et al. 2020, Table D.1: 3.64e3 petaflop/s-days)",
                  "tokens": "300B (Brown et al. 2020, §2.2; the post's table)"},
    ),
    Published(
        # OPT-175B has GPT-3 175B's shape; the GPT-2 BPE padded to 50272; 2M-token batches.
        "opt-175b", ("model.preset=opt+175b", "model.vocab_size=50272", "train.batch_size=1024"),
        tokens=300e9, corpus="opt", gpu="A100-80G", n_gpus=992, tflops_per_gpu=147.0,
        reported={"hardware": "992 80GB A100 GPUs, FSDP + Megatron tensor parallelism (Zhang et al. 2022, §2.4)",
                  "throughput": "up to 147 TFLOP/s per GPU (Zhang et al. 2022, §2.4)",
                  "restarts": "at least 35 manual restarts and ~70 automatic ones (Zhang et al. 2022, §2.4-2.5)",
                  "duration": "at least 2 months on ~1000 80G A100 GPUs for one pass (the post)"},
    ),
    Published(
        # PaLM's heads are 256 wide, narrower than 18432/48 = 384; d_ff = 4·d; 256k vocabulary.
        "palm-540b", ("model.preset=palm", "model.n_layer=118", "model.n_embd=18432", "model.n_head=48",
                      "model.vocab_size=256000", "model.block_size=2048"),
        tokens=770e9, corpus="palm", gpu="TPU-v4", n_gpus=6144, head_dim=256, mfu=0.462,
        reported={"total_flops": "2.56e24 (Chowdhery et al. 2022, compute appendix; recalled, not re-read)",
                  "mfu": "46.2 % model FLOPs utilisation, 57.8 % with rematerialisation (Chowdhery et al. 2022, Table 3)",
                  "hardware": "6144 TPU v4 chips in two pods (Chowdhery et al. 2022)",
                  "tokens": "770B seen of a 780B corpus (the post's table)"},
    ),
    Published(
        "bloom-176b", ("model.preset=bloom", "model.n_layer=70", "model.n_embd=14336", "model.n_head=112",
                       "model.vocab_size=250880", "model.block_size=2048"),
        tokens=366e9, corpus="bloom", gpu="A100-80G", n_gpus=384,
        reported={"hardware": "48 nodes × 8 A100 80GB, TP4 × PP12, ZeRO-1-like bf16 optimizer (BigScience tr11 slurm)",
                  "tokens": "366B seen of a 341B corpus (the post's table)"},
    ),
)}


def find_published(name: str) -> Published:
    key = str(name).strip().lower()
    if key not in PUBLISHED:
        raise UserError(f"--published: unknown run {name!r} (known: {', '.join(PUBLISHED)})")
    return PUBLISHED[key]


def corpus_tokens(value: str) -> tuple[float, float | None, str]:
    """``--corpus-tokens``: a count, or a run of the post's table (then also that run's tokens seen).

    Returns (corpus tokens, tokens seen or None, where the number came from)."""
    key = str(value).strip().lower()
    key = CORPUS_ALIASES.get(key, key)
    if key in CORPUS_TOKENS:
        corpus, seen = CORPUS_TOKENS[key]
        return corpus, seen, f"{key}: {CORPUS_SOURCE}"
    return parse_count(value, "--corpus-tokens"), None, "--corpus-tokens"
