# Two commands set up everything: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint test-slow check-monitoring check-docker bench bench-foundation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,plots]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/p2pmed demo

test: lint
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

# Style, types and the layer contracts (pyproject.toml); make test runs these first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The shipped alert rules through promtool, and a real Prometheus scraping real nodes (docs/operators.md).
check-monitoring: $(STAMP)
	command -v promtool >/dev/null || apt-get install -y -q prometheus
	$(BIN)/python -m pytest -q -m slow tests/test_monitoring.py

# The image built and a 4-node compose network run through a killed and a stopped container
# (docs/operators.md, "Docker"). Installs and starts Debian's Docker engine and compose if missing
# (root); builds a Debian base with debootstrap when no base image is at hand.
check-docker: $(STAMP)
	docker/ensure-docker.sh
	$(BIN)/python -m pytest -q -s -m slow tests/test_docker.py

# Throughput and latency of a 4-node network against this machine's signature limit (benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/p2pmed bench --out bench-out

bench-foundation: $(STAMP)
	$(BIN)/python benchmarks/foundation.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
