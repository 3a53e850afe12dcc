"""The sandbox that runs model-written code: each misbehaviour is classified, and none hangs the test."""
from __future__ import annotations

import os
import signal

import pytest

from gptlab.eval.sandbox import MAX_WRITTEN, Limits, network_isolation, run_python

# A short wall limit so a hang costs seconds; the CPU limit far above it unless a test says otherwise.
QUICK = Limits(wall_s=3.0, cpu_s=60.0, memory_mb=256)
pytestmark = pytest.mark.timeout(120)


def test_a_correct_program_passes_and_its_output_comes_back():
    o = run_python("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')", QUICK)
    assert (o.status, o.returncode, o.detail) == ("passed", 0, "")
    assert o.stdout == "ok\n"


@pytest.mark.parametrize("source, detail", [
    ("def add(a, b):\n    return a - b\nassert add(2, 3) == 5", "AssertionError"),
    ("raise KeyError('k')", "KeyError: 'k'"),
    ("def f(:\n", "SyntaxError"),
])
def test_a_wrong_program_fails_with_the_error(source, detail):
    o = run_python(source, QUICK)
    assert o.status == "failed" and detail in o.detail


@pytest.mark.parametrize("source", ["while True:\n    pass", "import time\ntime.sleep(600)"])
def test_a_program_that_never_ends_is_killed_at_the_wall_limit(source):
    o = run_python(source, QUICK)
    assert o.status == "timeout" and "wall clock" in o.detail
    assert o.returncode == -signal.SIGKILL


def test_a_busy_loop_is_stopped_by_the_cpu_limit():
    o = run_python("while True:\n    pass", Limits(wall_s=100.0, cpu_s=1.0, memory_mb=256))
    assert o.status == "timeout" and "CPU" in o.detail
    assert o.returncode == -signal.SIGXCPU


def test_too_much_memory_is_refused():
    o = run_python("x = bytearray(4 << 30)\nprint('allocated')", QUICK)
    assert o.status == "memory" and "256 MB" in o.detail
    assert "allocated" not in o.stdout


@pytest.mark.parametrize("namespace", [True, False])
@pytest.mark.parametrize("source", [
    "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))",
    "import socket\nsocket.create_connection(('example.com', 80), timeout=1)",
    # Catching the refusal does not help: the run is still classified blocked.
    "import socket\ntry:\n    socket.socket()\nexcept BaseException:\n    pass\n",
    "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9', timeout=1)",
])
def test_opening_a_socket_is_blocked_with_or_without_a_network_namespace(source, namespace):
    o = run_python(source, Limits(wall_s=10.0, cpu_s=60.0, memory_mb=256, network_namespace=namespace))
    assert o.status == "blocked" and "socket" in o.detail


def test_the_network_namespace_is_a_new_one_where_it_is_available():
    if network_isolation() != "namespace+guard":
        pytest.skip("no unprivileged network namespace on this machine: the guard alone blocks sockets")
    o = run_python("import os\nprint(os.readlink('/proc/self/ns/net'))", QUICK)
    assert o.status == "passed" and o.stdout.strip() != os.readlink("/proc/self/ns/net")
    assert network_isolation(Limits(network_namespace=False)) == "guard"


def test_writes_outside_the_temporary_folder_are_blocked(tmp_path):
    target = tmp_path / "written_by_candidate.txt"
    o = run_python(f"open({str(target)!r}, 'w').write('x')", QUICK)
    assert o.status == "blocked" and not target.exists()
    o = run_python(f"import os\nos.remove({str(tmp_path)!r})", QUICK)
    assert o.status == "blocked" and tmp_path.exists()
    # Inside its own folder (the working directory) a program may write and read back.
    o = run_python("open('x.txt', 'w').write('x')\nassert open('x.txt').read() == 'x'", QUICK)
    assert o.status == "passed"


@pytest.mark.parametrize("source", ["import os\nos.fork()", "import subprocess\nsubprocess.run(['true'])",
                                    "import os\nos.system('true')", "import os\nos.kill(os.getppid(), 9)",
                                    "import ctypes\nctypes.CDLL(None)"])
def test_processes_signals_and_native_calls_are_blocked(source):
    assert run_python(source, QUICK).status == "blocked"


@pytest.mark.parametrize("source", ["import sys\nsys.exit(0)\nassert False", "import os\nos._exit(0)\nassert False"])
def test_exiting_early_with_status_0_does_not_pass(source):
    o = run_python(source, QUICK)
    assert o.status == "failed" and "end" in o.detail


def test_output_is_capped():
    o = run_python("print('x' * 100_000)", Limits(wall_s=10.0, output_bytes=1000))
    assert o.status == "passed" and o.stdout.startswith("x" * 1000) and o.stdout.endswith("[output truncated]")
    assert len(o.stdout) < 1100
    o = run_python("while True:\n    print('x' * 10_000)", Limits(wall_s=10.0, file_bytes=1 << 20))
    assert o.status == "failed" and "File too large" in o.stderr      # RLIMIT_FSIZE stops it, not the clock


def test_the_child_sees_a_minimal_environment_and_an_empty_folder(monkeypatch):
    monkeypatch.setenv("GPTLAB_TEST_SECRET", "hunter2")
    o = run_python("import os\nprint(' '.join(sorted(os.environ)))\nprint(' '.join(sorted(os.listdir('.'))))\n"
                   "print(os.getcwd())", QUICK)
    env, files, cwd = o.stdout.splitlines()
    assert env.split() == ["HOME", "LANG", "PATH", "TMPDIR"]            # no secret, no marker token
    assert files.split() == [".stderr", ".stdout", "_guard.py", "_program.py"]
    assert not os.path.exists(cwd)                        # removed afterwards


def test_a_program_cannot_fill_the_disk_with_many_files():
    o = run_python("for i in range(1000):\n    open(f'f{i}', 'w').write('x')", QUICK)
    assert o.status == "blocked" and f"more than {MAX_WRITTEN} files" in o.detail
    o = run_python(f"for i in range({MAX_WRITTEN}):\n    open(f'f{{i}}', 'w').write('x')\n"
                   "for i in range(5):\n    open('f0', 'w').write('y')", QUICK)     # rewriting one file is fine
    assert o.status == "passed"
