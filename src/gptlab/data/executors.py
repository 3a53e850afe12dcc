"""Where shard tasks run: a local process pool (the default) or a Ray cluster.

Both take the same picklable task function and argument list and yield results in task
order, so the output and the funnel do not depend on the executor. Tasks write their own
outputs atomically and record completion themselves; the executor only schedules.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import gptlab
from gptlab.schema import ConfigError

EXECUTORS = ("local", "ray")


def run_tasks(fn: Callable[[Any], Any], tasks: list[Any], executor: str = "local",
              workers: int = 2) -> Iterator[Any]:
    """Run ``fn(task)`` for every task; yield results in task order as they complete in order."""
    if not tasks:
        return
    if executor == "local":
        if workers <= 1 or len(tasks) == 1:
            for t in tasks:
                yield fn(t)
            return
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            yield from pool.map(fn, tasks)
        return
    if executor == "ray":
        yield from _run_ray(fn, tasks, workers)
        return
    raise ConfigError(f"data.executor: unknown executor {executor!r} (choose {', '.join(EXECUTORS)})")


def init_ray(workers: int = 2) -> None:
    """Connect to RAY_ADDRESS when set, else start a local Ray with ``workers`` CPUs."""
    try:
        import ray  # noqa: PLC0415  (optional extra (ray), seconds to import)
    except ImportError:
        raise ConfigError("data.executor: 'ray' needs the ray extra (pip install 'gptlab[ray]')") from None
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    # Local workers must import this very gptlab (a source checkout may shadow an install).
    src = str(Path(gptlab.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})


def _run_ray(fn: Callable[[Any], Any], tasks: list[Any], workers: int) -> Iterator[Any]:
    import ray  # noqa: PLC0415  (optional extra (ray), seconds to import)
    init_ray(workers)
    remote = ray.remote(num_cpus=1)(fn)
    refs = [remote.remote(t) for t in tasks]
    for ref in refs:
        yield ray.get(ref)
