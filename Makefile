# The two commands of the README: `make run` and `make test`. Each works on a
# fresh machine with only Python 3.11 and make: it creates .venv, installs the
# project from its own files, prepares the dbt manifest, then does its job.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export EXPPLATFORM_LANDING_DIR ?= $(CURDIR)/data/landing
export EXPPLATFORM_DUCKDB_PATH ?= $(CURDIR)/data/warehouse.duckdb
SAMPLE_DAYS ?= 30
SAMPLE_USERS ?= 20000
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: install run test lint format bench sample-data materialize ui dbt-parse clean

$(STAMP): pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,spark]"
	@touch $(STAMP)

install: $(STAMP) dagster-home dbt-parse

dagster-home:
	@mkdir -p $(DAGSTER_HOME)
	@cp config/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# The manifest is build output (never committed): tests, CI and `dagster dev` need it.
dbt-parse: $(STAMP)
	$(BIN)/expplatform prepare

sample-data: install
	$(BIN)/expplatform sample-data --days $(SAMPLE_DAYS) --users $(SAMPLE_USERS)

materialize: install
	$(BIN)/expplatform materialize --sample-range

ui: install
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

run: install
	$(BIN)/expplatform sample-data --days $(SAMPLE_DAYS) --users $(SAMPLE_USERS)
	$(BIN)/expplatform materialize --sample-range
	@echo "Dagster UI: http://$(HOST):$(PORT)"
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/expplatform bench

clean:
	rm -rf dbt_project/target dbt_project/logs .pytest_cache
