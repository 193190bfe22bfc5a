# Two commands set up everything: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench bench-foundation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/p2pmed demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Throughput and latency of a 4-node network against this machine's signature limit (benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/p2pmed bench --out bench-out

bench-foundation: $(STAMP)
	$(BIN)/python benchmarks/foundation.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
