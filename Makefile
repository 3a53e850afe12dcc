# The two commands a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
# CPU build by default; a GPU user can pick another, e.g. `make TORCH_SPEC="torch==2.13.0" ...`
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_SIZE ?= small
DEMO_OUT ?= runs/demo

.PHONY: venv demo test test-fast faults bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/gptlab demo --size $(DEMO_SIZE) --out $(DEMO_OUT)

# ruff first: imports at the top (PLC0415), sorted, no unused names. Then the whole suite.
test: venv
	$(PY) -m ruff check src tests bench
	$(PY) -m pytest -q tests

# The same without the slow end-to-end and multi-process tests (a few minutes).
test-fast: venv
	$(PY) -m ruff check src tests bench
	$(PY) -m pytest -q -m "not slow" tests

# gptlab attacks itself (kills, corruption, fuzzing, foreign folders, pickles) and prints one table;
# every loss, crash, traceback and destroyed-file count must be 0 (exit 1 otherwise). ~15 min on 2 cores.
faults: venv
	$(VENV)/bin/gptlab selftest faults --out runs/faults

# Each benchmark prints ratios against a baseline run side by side in the same invocation.
bench: venv
	$(PY) bench/train_throughput.py
	$(PY) bench/generate_kv_cache.py
	$(PY) bench/data_throughput.py   # datatrove / text-dedup baselines: run once with --setup

clean:
	rm -rf $(VENV) runs
