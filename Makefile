# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit system-deps venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	./scripts/install-system-deps.sh

demo: system-deps $(STAMP)
	$(VENV)/bin/aiopsd demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two pytest-xdist workers: most integration tests wait on real servers and subprocesses, so two
# at a time halve the wall time on a 2-core machine (PYTEST_WORKERS=0 runs them one by one).
PYTEST_WORKERS ?= 2

test: system-deps $(STAMP) lint typecheck
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit tests/contract

bench: $(STAMP)
	$(PY) bench/anomaly.py
	$(PY) bench/drift.py
	$(PY) bench/webhook.py
	$(PY) bench/ha.py
	$(PY) bench/shadow.py

clean:
	rm -rf $(VENV) build *.egg-info
