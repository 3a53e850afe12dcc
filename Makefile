# The two commands a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
# CPU build by default; a GPU user can pick another, e.g. `make TORCH_SPEC="torch==2.13.0" ...`
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEMO_SIZE ?= small
DEMO_OUT ?= runs/demo

.PHONY: venv demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/gptlab demo --size $(DEMO_SIZE) --out $(DEMO_OUT)

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) runs
