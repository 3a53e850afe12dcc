"""`gptlab data curate --executor ray` on a real two-node Ray cluster (both nodes on loopback).

The head and a second node are separate `ray start` processes, so tasks cross node boundaries
through Ray's object store exactly as on a cluster; the curate output must be byte-identical to
the local executor's. The cluster lives in its own temp dir with its own auth token, and the
test always stops it: by process id (every process whose command line names that temp dir, and
their children), because `ray stop` would stop every Ray on the machine, not just this one.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from data_corpora import planted_corpus, write_jsonl

from gptlab.manifest import file_checksum

SRC = str(Path(__file__).parents[2] / "src")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corpus(tmp: Path, prose: list[str]) -> Path:
    near = planted_corpus(seed=5, n_groups=6)
    for k in range(3):
        rows = [{"text": t, "id": f"p{k}-{i}", "source": "prose", "domain": "prose"}
                for i, t in enumerate(prose[k * 8:(k + 1) * 8])]
        rows += [{"text": t, "id": f"n{k}-{i}", "source": "noise", "domain": "noise"}
                 for i, t in enumerate(near[k * 8:(k + 1) * 8])]
        write_jsonl(tmp / "in" / f"part{k}.jsonl", rows)
    return tmp / "in"


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_checksum(p) for p in sorted(folder.rglob("*.jsonl.zst"))}


def _ray(args: list[str], env: dict) -> subprocess.CompletedProcess:
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    cmd = [ray_cli, *args] if ray_cli else [sys.executable, "-m", "ray.scripts.scripts", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def _stop_cluster(ray_tmp: Path) -> None:
    """Stop the processes of the cluster in ray_tmp (raylets, GCS, agents, workers)."""
    procs = {}
    for p in psutil.process_iter(["cmdline"]):
        if any(str(ray_tmp) in a for a in (p.info["cmdline"] or [])):
            procs[p.pid] = p
            with contextlib.suppress(psutil.Error):
                procs.update({c.pid: c for c in p.children(recursive=True)})
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(list(procs.values()), timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def _curate(inp: Path, out: Path, executor: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gptlab.cli", "data", "curate", "--input", str(inp), "--out", str(out),
           "--recipe", "dedup", "--executor", executor, "--workers", "2", "data.docs_per_shard=10"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_curate_on_a_two_node_ray_cluster_matches_the_local_executor(tmp_path, prose):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    inp = _corpus(tmp_path, prose)
    # A short private dir: Ray's socket paths must stay under the OS limit of ~107 bytes.
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "GPTLAB_PROGRESS": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
           # Ray's token auth, with a token only this test knows (a joining node must present it).
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    local = _curate(inp, tmp_path / "local", "local", env)
    assert local.returncode == 0, local.stderr[-3000:]
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
    try:
        head = _ray(["start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--temp-dir={ray_tmp}",
                     "--include-dashboard=false", f"--ray-client-server-port={_free_port()}", *common], env)
        assert head.returncode == 0, head.stdout[-2000:] + head.stderr[-2000:]
        worker = _ray(["start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                      f"--temp-dir={ray_tmp}", *common], env)
        assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
        for _ in range(30):  # the second node registers a moment after `ray start` returns
            status = _ray(["status", f"--address=127.0.0.1:{port}"], env)
            if status.stdout.count("node_") >= 2:
                break
            time.sleep(2)
        assert status.stdout.count("node_") >= 2, status.stdout  # both nodes joined
        remote = _curate(inp, tmp_path / "ray", "ray", {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"})
        assert remote.returncode == 0, remote.stderr[-3000:]
    finally:
        _stop_cluster(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    a, b = _checksums(tmp_path / "local"), _checksums(tmp_path / "ray")
    assert len(a) >= 3 and a == b
