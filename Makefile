# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions of everything `make` and CI install (the dev, otel and fast extras);
# pyproject.toml holds the ranges Bastion accepts as a library.
LOCK := requirements/dev.lock

.PHONY: demo test lint typecheck contracts unit install-ranges bench services clean lock

# `pip check` fails when the lock no longer satisfies pyproject.toml's ranges: `make lock`.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# Regenerates the lock from pyproject.toml, keeping the versions it already pins where
# they still fit; `make lock UPGRADE=--upgrade` moves everything to the newest.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'uv>=0.13,<0.14'
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra otel --extra fast --python-version 3.11 \
		--quiet $(UPGRADE) -o $(LOCK)

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

# An application pinning older pydantic and aiohttp minors can still install Bastion.
install-ranges:
	PYTHON=$(PYTHON) bash scripts/check_install_ranges.sh

# Redis and PostgreSQL for the memory stores' tests (installs/starts them where it can).
services:
	bash scripts/services.sh

test: lint typecheck contracts unit install-ranges

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
