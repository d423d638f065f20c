# The two commands of the README: `make demo` and `make test`.
# Both create .venv at the repository root and install everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test test-fast lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,spark,bench]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/tsdiff demo

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

lint: venv
	$(VENV)/bin/ruff check tsdiff services pipelines benchmarks tests scripts

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache .hypothesis
