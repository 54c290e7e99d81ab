.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Postgate with its dev tools (fast when done)

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

test: $(STAMP) lint ## Lint, then run the whole test suite against a real PostgreSQL
	$(PY) -m pytest

bench: $(STAMP) ## Run the benchmarks in bench/ and write bench/RESULTS.md
	$(PY) -m bench

migration: $(STAMP) ## New Alembic revision from the models: make migration msg="what changed"
	$(VENV)/bin/alembic revision --autogenerate -m "$(msg)"

.PHONY: help install run lint fmt test bench migration
