# Two commands matter: `make run` (the whole system) and `make test` (the whole suite, as CI runs it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt typecheck pytest bench-codec install clean stop help

help:
	@echo "make run          start the gateway, the workers, the embedded database (and RabbitMQ if needed)"
	@echo "make test         lint, type-check and run the whole test suite (real RabbitMQ and nx-27017)"
	@echo "make bench-codec  decode-rate and latency benchmark of the codec cascade -> bench/RESULTS.md"
	@echo "make fmt          format the code with ruff"

# The virtualenv is (re)built whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python deploy/local/run.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench-codec: $(STAMP)
	$(BIN)/python -m bench.codec

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

stop:
	@for f in var/run/*.pid; do [ -f "$$f" ] && kill "$$(cat $$f)" 2>/dev/null; rm -f "$$f"; done; true

clean: stop
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
