"""Atomic writes and stage manifests: the invariant every stage keeps.

A stage owns a folder. Outputs are written under a temporary name and renamed into
place; ``manifest.json`` is written last and lists every output with its checksum.
A stage is complete only when its manifest says so, its input key matches, and every
checksum verifies. So a rerun skips finished work, and a killed stage never leaves a
half-written file that looks finished.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import xxhash

from gptlab.console import log
from gptlab.errors import UserError

MANIFEST = "manifest.json"

# The resolved config of the whole run, when a caller (the CLI, the demo chain) knows it. A stage
# keys on its own section only, but records the whole tree in its manifest as provenance.
_RUN_CONFIG: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("run_config", default=None)


@contextlib.contextmanager
def recording(run_config: dict[str, Any]) -> Iterator[None]:
    """Inside this block, every manifest records ``run_config`` as the resolved config."""
    token = _RUN_CONFIG.set(run_config)
    try:
        yield
    finally:
        _RUN_CONFIG.reset(token)


def file_checksum(path: str | Path, chunk: int = 1 << 22) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | Path) -> None:
    """Give a file the mode a new file gets under the umask. Some writers (mkstemp,
    safetensors) create files 0600 whatever the umask; outputs should be readable as any other."""
    os.chmod(path, 0o666 & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync and rename it into place."""
    path = Path(path)
    if path.is_dir():   # `--out .` for a file: say so, rather than fail renaming onto a folder
        raise IsADirectoryError(errno.EISDIR, "is a folder; name a file to write", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file 0600; the output gets the mode any new file would (0644 under umask 022).
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | Path, data: bytes | str) -> None:
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_manifest(stage_dir: str | Path) -> dict[str, Any] | None:
    """The stage's manifest, or None when there is none or it is not one (garbage bytes, not JSON,
    not an object): such a stage is simply not complete, never a crash."""
    p = Path(stage_dir) / MANIFEST
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError, RecursionError):
        # ValueError: not JSON, not UTF-8, an integer too long to parse
        return None
    return m if isinstance(m, dict) else None   # a manifest is a JSON object; anything else is none


def write_manifest(stage_dir: str | Path, *, stage: str, key: str, outputs: list[str],
                   config: dict[str, Any] | None = None, summary: dict[str, Any] | None = None) -> dict:
    """Record a finished stage. ``outputs`` are paths relative to ``stage_dir``."""
    stage_dir = Path(stage_dir)
    files = {rel: {"checksum": file_checksum(stage_dir / rel), "bytes": (stage_dir / rel).stat().st_size}
             for rel in sorted(outputs)}
    run_config = _RUN_CONFIG.get()
    manifest = {"stage": stage, "complete": True, "key": key, "finished_at": time.time(),
                "outputs": files, "config": run_config if run_config is not None else (config or {}),
                "summary": summary or {}}
    atomic_write_json(stage_dir / MANIFEST, manifest)
    return manifest


def verify(stage_dir: str | Path, key: str | None = None) -> tuple[bool, str]:
    """(complete?, reason). Checks the flag, the input key, and every output's checksum."""
    stage_dir = Path(stage_dir)
    m = read_manifest(stage_dir)
    if m is None:
        return False, "unreadable manifest" if (stage_dir / MANIFEST).exists() else "no manifest"
    if not m.get("complete"):
        return False, "manifest not marked complete"
    if key is not None and m.get("key") != key:
        return False, "inputs or config changed"
    outputs = m.get("outputs", {})
    if not isinstance(outputs, dict) or not all(isinstance(i, dict) and "bytes" in i and "checksum" in i
                                                for i in outputs.values()):
        return False, "unreadable manifest"
    for rel, info in outputs.items():
        p = stage_dir / rel
        if not p.exists():
            return False, f"missing output {rel}"
        if p.stat().st_size != info["bytes"] or file_checksum(p) != info["checksum"]:
            return False, f"checksum mismatch in {rel}"
    return True, "complete"


def is_complete(stage_dir: str | Path, key: str | None = None) -> bool:
    return verify(stage_dir, key)[0]


def invalidate(stage_dir: str | Path) -> None:
    """Remove the manifest so the stage reads as not done (before rewriting its outputs)."""
    p = Path(stage_dir) / MANIFEST
    if p.exists():
        p.unlink()


def stage_key(config: dict[str, Any], upstream: list[str | Path] = (), files: list[str | Path] = ()) -> str:
    """A stage's input key: its config, the output checksums of the stages it reads, and the
    content (not the path) of any other input files."""
    h = xxhash.xxh3_128()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for f in files:
        h.update(file_checksum(f).encode())
    for up in upstream:
        m = read_manifest(up)
        if m is None or not m.get("complete"):
            raise FileNotFoundError(f"{up}: upstream stage is not complete (run it first)")
        h.update(json.dumps(m.get("outputs", {}), sort_keys=True).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- the stage routine

MARKER = ".gptlab-stage"
RUN = "run"   # the owner a run folder's marker names (`gptlab demo`): its stages live in subfolders


def owner_of(folder: str | Path) -> str | None:
    """The gptlab stage that wrote ``folder`` (its manifest, else its marker), or None."""
    d = Path(folder)
    if not d.is_dir():
        return None
    m = read_manifest(d)
    if m is not None and m.get("stage"):
        return m["stage"]
    marker = d / MARKER
    if marker.is_file():
        return marker.read_text().strip() or None
    return None


def _marker_temp(e: Path) -> bool:
    """The marker's own temporary file (atomic_path's name for it), left by a kill before its rename."""
    return e.name.startswith(f".{MARKER}.") and e.name.endswith(".tmp") and e.is_file() and not e.is_symlink()


def _foreign(d: Path) -> list[Path]:
    """Entries of ``d`` that no gptlab stage wrote. A nested stage folder (eval keeps its
    tasks in ``tasks/``) is gptlab's; a run folder is not a stage's to write into."""
    return [e for e in sorted(d.iterdir())
            if e.name != MARKER and not _marker_temp(e) and not (e.is_dir() and owner_of(e) not in (None, RUN))]


class Stage:
    """The one way to be a stage: own a folder, skip when done, record completion last.

        with Stage(out, "pack", key, force=force) as st:
            if st.complete:
                return st.summary
            ...write outputs atomically under ``st.dir``...
            return st.done(outputs, summary, config={"pack": ...})

    On entry it refuses a folder that holds another stage's manifest (or a run folder), or
    files that no gptlab stage wrote, unless ``force``; it marks the folder as this stage's,
    and removes a stale manifest whose key no longer matches, so a stage killed while
    rewriting never reads as complete. ``done`` writes the manifest last. An exception
    leaves partial work in place for the stage's own resume logic.

    ``owned`` says whether everything already in the folder is this stage's own (it was
    new, empty, or this stage's before): only then may the stage delete stale files in it.
    After ``force`` into someone else's folder it is False, so nothing of theirs is deleted.
    """

    def __init__(self, out: str | Path, name: str, key: str, *, force: bool = False):
        self.dir, self.name, self.key, self.force = Path(out), name, key, force
        self.complete = False
        self.owned = False
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> Stage:
        self._claim()
        ok, _ = verify(self.dir, self.key)
        if ok:
            self.complete = True
            self.summary = read_manifest(self.dir).get("summary", {})
            log(f"{self.name}: complete, skipping ({self.dir})")
        else:
            invalidate(self.dir)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _claim(self) -> None:
        d = self.dir
        if d.exists() and not d.is_dir():
            raise UserError(f"{d}: exists and is not a folder; choose a folder for the {self.name} stage")
        owner = owner_of(d)
        foreign = _foreign(d) if d.is_dir() else []
        if not self.force:
            if owner == RUN:
                raise UserError(f"{d}: is a gptlab run folder (its stages are subfolders); give the {self.name} "
                                f"stage its own folder (or pass --force to write into it)")
            if owner is not None and owner != self.name:
                raise UserError(f"{d}: holds the output of the {owner} stage, not {self.name}; "
                                f"choose another folder (or pass --force to replace it)")
            if owner is None and foreign:
                raise UserError(f"{d}: is not empty and was not made by gptlab ({foreign[0].name}); choose an "
                                f"empty or new folder (or pass --force to write into it)")
            # gptlab never makes a symbolic link: one in a stage's folder (say its train/ replaced by a
            # link elsewhere) would make the stage write, replace or delete files outside the folder.
            links = [e for e in sorted(d.iterdir()) if e.is_symlink()] if d.is_dir() else []
            if links:
                raise UserError(f"{links[0]}: is a symbolic link (to {os.readlink(links[0])}), which gptlab did not "
                                f"make; the {self.name} stage writes only inside {d} (remove the link, or pass "
                                f"--force to write through it)")
        self.owned = owner == self.name or (owner is None and not foreign)
        d.mkdir(parents=True, exist_ok=True)
        for e in d.iterdir():
            if _marker_temp(e):
                e.unlink()
        if owner != self.name:
            atomic_write(d / MARKER, self.name + "\n")

    def done(self, outputs: list[str], summary: dict[str, Any] | None = None,
             config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record the stage as complete: outputs (relative paths) with checksums, the summary,
        and the resolved config. Returns the summary."""
        write_manifest(self.dir, stage=self.name, key=self.key, outputs=outputs, config=config, summary=summary)
        self.complete = True
        self.summary = summary or {}
        return self.summary
