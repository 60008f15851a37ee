# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck contracts unit bench services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bastion demo

lint: $(STAMP)
	$(BIN)/ruff check bastion tests bench
	$(BIN)/ruff format --check bastion tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck contracts unit

bench: $(STAMP)
	$(BIN)/python -m bench.router_overhead

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
