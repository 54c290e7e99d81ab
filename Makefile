.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JS := tests/compat/js
JS_STAMP := $(JS)/node_modules/.installed

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# uv installs exactly what uv.lock pins (ranges live in pyproject.toml; `make lock` re-resolves them).
# It is bootstrapped into .venv/.uv-<version> with the venv's own pip, so a fresh machine needs only
# python3, and a new UV_VERSION installs itself. It sits beside site-packages, not in it: `uv sync`
# removes every package the lock does not name. The Dockerfile pins the same version.
UV_VERSION := 0.13.10
UV := $(VENV)/.uv-$(UV_VERSION)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

$(UV):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --target $(VENV)/.uv-$(UV_VERSION) uv==$(UV_VERSION)

# The project itself is installed editable (uv's default), so tests and `make run` use the checkout.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --frozen --extra dev --python $(PY)
	@touch $(STAMP)

# Postmark's Node client for the compat suite; without Node.js those tests skip.
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(JS) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "make: npm not found, so the postmark.js compat tests will skip (install Node.js >= 18 to run them)"; \
	fi

install: $(STAMP) $(JS_STAMP) ## Create .venv and install Postgate with its dev tools, and the Node client for the compat suite (fast when done)

run: $(STAMP) ## Migrate, then run API, SMTP gateway and delivery worker (embedded PostgreSQL when DATABASE_URL is unset)
	$(PY) -m api_service.devtools

lint: $(STAMP) ## ruff (lint and format check), mypy --strict and the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(STAMP) ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Line coverage of what runs in the pytest process; the services the end-to-end tests start as
# subprocesses are not measured. The floor sits a few points under the last full run (89% of 13,284 lines).
COV_FLOOR := 86
COVERAGE := --cov=api_service --cov=smtp_service --cov=shared --cov-report=term:skip-covered --cov-fail-under=$(COV_FLOOR)

test: $(STAMP) $(JS_STAMP) lint ## Lint, then run the whole test suite against a real PostgreSQL, with coverage
	$(PY) -m pytest $(COVERAGE)

bench: $(STAMP) ## Run the benchmarks in bench/ and write bench/RESULTS.md
	$(PY) -m bench

bench-attacks: $(STAMP) ## Run issue 22's attacks against one API process; slowest /health and RSS to bench/ATTACKS.md
	$(PY) -m bench.attacks

lock: | $(UV) ## Re-resolve uv.lock after changing a dependency in pyproject.toml
	$(UV) lock

migration: $(STAMP) ## New Alembic revision from the models: make migration msg="what changed"
	$(VENV)/bin/alembic revision --autogenerate -m "$(msg)"

.PHONY: help install run lint fmt test bench bench-attacks lock migration
