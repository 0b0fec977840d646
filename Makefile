# Two commands: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck services tools netns-tools boavizta chromium pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) boavizta
	$(BIN)/continuum demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

# PostgreSQL and Redis on 127.0.0.1, which the tests use (started if down).
services:
	scripts/ensure-services.sh

# The real helm binary for the chart's tests, cached in .cache/tools (outside git); and
# PaddleOCR's text-direction classifier (from its PyPI wheel) in .cache/models.
tools: $(STAMP)
	scripts/fetch-helm.sh
	scripts/fetch-ppocr-cls.sh

# ip and tc (iproute2) for the network-namespace tests, installed with apt-get if missing
# (as root; those tests need root anyway).
netns-tools:
	scripts/ensure-netns-tools.sh

# Boavizta's own environment, .boavizta/ (its pins conflict with ours: docs/carbon.md).
boavizta:
	PYTHON=$(PYTHON) scripts/ensure-boavizta.sh

# Debian's chromium for the console's browser tests, installed with apt-get if missing.
chromium:
	scripts/ensure-chromium.sh

# Most tests wait on real processes (servers starting, heartbeats, leases), so a few
# workers share the two cores well; a test file stays on one worker (its module fixtures
# are set up once). PYTEST_WORKERS=0 runs everything in this one process.
PYTEST_WORKERS ?= 3
pytest: $(STAMP) services tools netns-tools boavizta chromium
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/solver_scale.py
	$(BIN)/python bench/baselines.py

clean:
	rm -rf $(VENV) .boavizta .mypy_cache .pytest_cache .ruff_cache
