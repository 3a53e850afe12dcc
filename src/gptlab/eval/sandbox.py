"""Running a model's Python code in a child process with time, memory, output and network limits.

Code tasks (``eval/code.py``) execute what a model wrote, so each candidate runs in its own
child process, never in gptlab's:

* **where**: a fresh empty temporary folder as the working directory (removed afterwards),
  ``python -I`` (isolated mode: no ``PYTHON*`` variables, no user site, the script's folder
  not on ``sys.path``) and a minimal environment (``PATH``, ``HOME`` and ``TMPDIR`` = that folder);
* **limits** (``resource.setrlimit`` in the child, before the candidate runs): address space
  (``RLIMIT_AS``: an allocation past it raises ``MemoryError``), CPU seconds (``RLIMIT_CPU``),
  size of any file it writes (``RLIMIT_FSIZE``, which also caps its stdout and stderr, sent
  to files), and open files; a wall-clock limit on top, after which the child's whole
  process group (``start_new_session``) is killed — the group is killed after a normal
  exit too, so nothing it started outlives it;
* **network**: a private, empty network namespace (``unshare -rn``, an unprivileged user
  namespace; ``unshare -n`` when gptlab runs as root) where the kernel allows one; it has only a
  loopback interface that is down, so nothing outside can be reached. Where it does not, the
  guard below is the only barrier. ``network_isolation()`` says which one a run has, and the
  results record it;
* **a guard** (``GUARD``, run before the candidate): a ``sys.addaudithook`` hook, which
  Python code cannot remove, refuses to create sockets, to start processes (``fork``,
  ``subprocess``, ``os.system``, ``exec*``, ``posix_spawn``), to send signals, to load C
  libraries through ``ctypes``, to write, create, rename, remove or chmod any path
  outside the temporary folder (``/dev/null`` excepted), and to open more than
  ``MAX_WRITTEN`` files for writing (with ``RLIMIT_FSIZE``, a bound on the disk it can fill). A refusal raises an exception that
  ``except Exception`` does not catch, and the run is classified ``blocked`` even if the
  candidate catches it anyway.

The guard catches accidents and the usual ways a model's code misbehaves; it is not a
security boundary against code written to escape (native extensions, file descriptors
opened relative to a directory, ...). Run models you do not trust in a container or a VM.

A run passes only if the program reaches its end: the guard writes a marker holding a
random token (which the candidate never sees) after the program returns, so a
``sys.exit(0)`` or ``os._exit(0)`` before the tests does not pass.
"""
from __future__ import annotations

import functools
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

STATUSES = ("passed", "failed", "timeout", "memory", "blocked")
EXIT_MEMORY, EXIT_BLOCKED, EXIT_EXITED = 113, 114, 115
MAX_WRITTEN = 32
_TOKEN_VAR = "GPTLAB_SANDBOX_TOKEN"

# Runs in the child before the candidate: argv[1] is the program's file, cwd the temp folder.
GUARD = r'''
import builtins, json, os, resource, sys, traceback

# The limits first, before anything of the candidate's runs: argv = [guard, LIMITS, PROGRAM].
for _name, _value in json.loads(sys.argv[1]).items():
    resource.setrlimit(getattr(resource, _name), tuple(_value))

_ROOT = os.path.realpath(os.getcwd())
_TOKEN = os.environ.pop("%(token)s", "")
_DONE = os.path.join(_ROOT, ".done")
_violations = []
_written = set()
_MAX_WRITTEN = %(max_written)d      # files opened for writing, so a candidate cannot fill the disk
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FORBIDDEN = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
              "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
              "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill",
              "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "pty.spawn"}
_PATHS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
          "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile",
          "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move", "os.chflags",
          "os.setxattr", "os.removexattr", "os.mkfifo", "os.mknod"}


class SandboxViolation(BaseException):   # not an Exception: `except Exception` lets it through
    pass


def _inside(p):
    try:
        real = os.path.realpath(os.fsdecode(p))
    except Exception:
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep) or real == os.devnull


def _refuse(event, what):
    _violations.append(f"{event}: {what}")
    raise SandboxViolation(f"the sandbox refused {event} ({what})")


def _hook(event, args):
    if event in _FORBIDDEN:
        _refuse(event, repr(args)[:200])
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and flags & _WRITE)
        if writing and not _inside(path):
            _refuse("a write", repr(path))
        if writing and os.path.realpath(os.fsdecode(path)) != _DONE:
            _written.add(os.path.realpath(os.fsdecode(path)))
            if len(_written) > _MAX_WRITTEN:
                _refuse("a write", f"more than {_MAX_WRITTEN} files")
    elif event in _PATHS:
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                _refuse(event, repr(a))


def _main():
    with open(sys.argv[2], encoding="utf-8") as f:
        source = f.read()
    sys.argv = sys.argv[2:]
    sys.addaudithook(_hook)
    code = 0
    try:
        exec(compile(source, "candidate.py", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except MemoryError:
        traceback.print_exc()
        code = %(memory)d
    except SandboxViolation:
        code = %(blocked)d
    except SystemExit as e:
        print(f"the program exited (sys.exit({e.code!r})) before it reached its end", file=sys.stderr)
        code = %(exited)d
    except BaseException:
        traceback.print_exc()
        code = 1
    if _violations:
        print("sandbox: refused " + "; ".join(_violations[:3]), file=sys.stderr)
        code = %(blocked)d
    if code == 0:
        with open(_DONE, "w") as f:
            f.write(_TOKEN)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_main()
''' % {"token": _TOKEN_VAR, "memory": EXIT_MEMORY, "blocked": EXIT_BLOCKED, "exited": EXIT_EXITED,
       "max_written": MAX_WRITTEN}


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0          # wall clock, then the process group is killed
    cpu_s: float = 10.0           # RLIMIT_CPU
    memory_mb: int = 1024         # RLIMIT_AS (address space: Python alone needs ~30-60 MB)
    file_bytes: int = 8 << 20     # RLIMIT_FSIZE: any file it writes, stdout and stderr included
    output_bytes: int = 64 << 10  # how much of stdout and of stderr is read back
    open_files: int = 64          # RLIMIT_NOFILE
    network_namespace: bool = True   # try `unshare`; False: the guard alone


@dataclass
class Outcome:
    status: str                   # one of STATUSES
    returncode: int | None
    detail: str                   # one line: why it did not pass ("" when it passed)
    stdout: str = ""
    stderr: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@functools.cache
def _unshare_prefix() -> tuple[str, ...]:
    """The `unshare` words that give a child its own empty network namespace here, or ()."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    try:
        ours = os.readlink("/proc/self/ns/net")
    except OSError:
        return ()
    for words in ((exe, "-rn"), (exe, "-n")):
        try:
            r = subprocess.run([*words, sys.executable, "-I", "-c", "import os; print(os.readlink('/proc/self/ns/net'))"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        # The namespace exists only if the child's differs from ours.
        if r.returncode == 0 and r.stdout.strip() and r.stdout.strip() != ours:
            return words
    return ()


def network_isolation(limits: Limits = Limits()) -> str:
    """How a child is kept off the network: "namespace+guard" or "guard"."""
    return "namespace+guard" if limits.network_namespace and _unshare_prefix() else "guard"


def _rlimits(limits: Limits) -> str:
    """The child's resource limits as JSON, applied by the guard (not a ``preexec_fn``, which
    is unsafe when the parent runs candidates from several threads)."""
    mem, cpu = limits.memory_mb << 20, max(1, math.ceil(limits.cpu_s))
    return json.dumps({"RLIMIT_AS": [mem, mem], "RLIMIT_CPU": [cpu, cpu + 1],
                       "RLIMIT_FSIZE": [limits.file_bytes] * 2, "RLIMIT_NOFILE": [limits.open_files] * 2,
                       "RLIMIT_CORE": [0, 0]})


def _read_capped(path: Path, n: int) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(n + 1)
    except OSError:
        return ""
    text = data[:n].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > n else "")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and ln != "[output truncated]"]
    return lines[-1].strip()[:300] if lines else ""


def run_python(source: str, limits: Limits = Limits()) -> Outcome:
    """Run ``source`` as a Python program in the sandbox and classify what happened:
    passed (it ran to its end), failed (an exception, a failed assert, a non-zero exit, an
    early exit), timeout (wall or CPU limit), memory (``MemoryError`` or killed for memory),
    blocked (the guard refused something)."""
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="gptlab-sandbox-") as tmp:
        root = Path(tmp)
        (root / "_guard.py").write_text(GUARD, encoding="utf-8")
        (root / "_program.py").write_text(source, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", _TOKEN_VAR: token}
        prefix = _unshare_prefix() if limits.network_namespace else ()
        argv = [*prefix, sys.executable, "-I", str(root / "_guard.py"), _rlimits(limits), str(root / "_program.py")]
        timed_out = False
        with open(root / ".stdout", "wb") as out, open(root / ".stderr", "wb") as err:
            proc = subprocess.Popen(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True)
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)    # its children too, whether or not it finished
                proc.wait()
        stdout = _read_capped(root / ".stdout", limits.output_bytes)
        stderr = _read_capped(root / ".stderr", limits.output_bytes)
        done = (root / ".done").is_file() and (root / ".done").read_text(errors="replace") == token
        rc = proc.returncode
    if timed_out:
        status, detail = "timeout", f"still running after {limits.wall_s:g} s (wall clock)"
    elif rc == 0 and done:
        status, detail = "passed", ""
    elif rc == -signal.SIGXCPU:
        status, detail = "timeout", f"used its {limits.cpu_s:g} s of CPU time"
    elif rc == -signal.SIGKILL:
        # Not killed by us (no timeout) and past the soft CPU limit's SIGXCPU: the hard CPU
        # limit, or the kernel's out-of-memory killer.
        status, detail = "memory", "killed (SIGKILL): out of memory or CPU time"
    elif rc == EXIT_MEMORY:
        status, detail = "memory", f"MemoryError (limit {limits.memory_mb} MB)"
    elif rc == EXIT_BLOCKED:
        status, detail = "blocked", _last_line(stderr) or "the sandbox refused an operation"
    elif rc == 0:
        status, detail = "failed", "exited before the program's end"
    else:
        status, detail = "failed", _last_line(stderr) or f"exit status {rc}"
    return Outcome(status, rc, detail, stdout, stderr)
