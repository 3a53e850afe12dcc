"""A two-node torchrun launch, both "nodes" on loopback, trains exactly like one process.

Two separate torchrun agents (one per node, one worker each) meet through the c10d rendezvous
on 127.0.0.1, as on a cluster where the endpoint is the first node; only the launch differs
from the single-node test in test_trainer.py, so the tolerances are the same.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from gptlab.checkpoint import latest_valid
from gptlab.config import load_config
from gptlab.train.loop import run_train

SRC = str(Path(__file__).parents[2] / "src")
ARGS = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "train.batch_size=8", "train.threads=1",
        "train.log_every=1000", "train.warmup_steps=2", "train.max_steps=8", "train.checkpoint_every=4"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path) -> dict:
    return load_file(str(latest_valid(run / "checkpoints") / "model.safetensors"))


@pytest.mark.slow
def test_two_nodes_on_loopback_match_one_process(pack_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTLAB_TENSORBOARD", "0")
    cfg = load_config(None, ARGS)
    run_train(cfg.model, cfg.train, cfg.stability, pack_dir, tmp_path / "one")
    port = _free_port()
    # Loopback only: the rendezvous endpoint, each agent's own address, and gloo's interface.
    env = {**os.environ, "GPTLAB_TENSORBOARD": "0", "GPTLAB_PROGRESS": "0", "PYTHONPATH": SRC,
           "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
              "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=gptlab-test",
              "--local-addr=127.0.0.1", "--max-restarts=0"]
    train = ["-m", "gptlab.cli", "train", "--data", str(pack_dir), "--out", str(tmp_path / "two"),
             *ARGS]
    nodes = [subprocess.Popen([*launch, *train], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        results = [(n.wait(timeout=600), n.stderr.read()) for n in nodes]
    finally:
        for n in nodes:
            if n.poll() is None:
                n.kill()
    for rc, err in results:
        assert rc == 0, err[-3000:]
    single, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(two) == len(single) == 8
    assert max(abs(a - b) for a, b in zip(single, two)) < 1e-4
    wa, wb = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    # Negative control: the run really was two ranks on two nodes.
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["summary"]["world"] == 2
