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

unit: $(STAMP) services
	$(BIN)/pytest -q

# Redis and PostgreSQL for the memory stores' tests (installs/starts them where it can).
services:
	bash scripts/services.sh

test: lint typecheck contracts unit

bench: $(STAMP)
	$(BIN)/python -m bench.router_overhead

# The gateway over HTTP against direct, a bare proxy and LiteLLM (docs/benchmarks.md).
# Needs wrk (apt-get install -y wrk); LiteLLM's rows need `make bench-peers` first.
.PHONY: bench-gateway bench-peers
bench-gateway: $(STAMP)
	$(BIN)/python -m bench.gateway

# LiteLLM in a venv of its own: never a dependency of Bastion.
bench-peers:
	test -x bench/.litellm-venv/bin/python || $(PYTHON) -m venv bench/.litellm-venv
	bench/.litellm-venv/bin/pip install -q 'litellm[proxy]'

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
