"""Named places where `gptlab selftest faults` can kill a command precisely.

``GPTLAB_SELFTEST_KILL=TAG`` (or ``TAG#N``: the Nth time) makes the process SIGKILL itself
when it reaches ``kill_point(TAG)``: e.g. inside a checkpoint write, between its weights and
its manifest, or in the middle of a stability-guard rollback, moments a kill from outside
hits only by luck. Unset (always, outside the selftest) it costs one dictionary lookup.
"""
from __future__ import annotations

import os
import signal

ENV = "GPTLAB_SELFTEST_KILL"
_seen: dict[str, int] = {}


def kill_point(tag: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    want, _, nth = spec.partition("#")
    if want != tag:
        return
    _seen[tag] = _seen.get(tag, 0) + 1
    if _seen[tag] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
