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
# The health pages and the dbt docs are served next to the Dagster UI (expplatform/health/server.py).
export EXPPLATFORM_PAGES_DIR ?= $(CURDIR)/data/pages
export EXPPLATFORM_PAGES_PORT ?= 3001

.PHONY: install run test lint format bench sample-data materialize ui docs clean

$(STAMP): pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,spark]"
	@touch $(STAMP)

# The dbt manifest (build output, never committed) and the instance settings in DAGSTER_HOME
# (config/dagster.yaml, written only where none exists) must be in place before any Dagster
# process starts: Dagster reads dagster.yaml once, at start-up.
install: $(STAMP)
	$(BIN)/expplatform prepare --if-stale

sample-data: install
	$(BIN)/expplatform sample-data --days $(SAMPLE_DAYS) --users $(SAMPLE_USERS)

materialize: install
	$(BIN)/expplatform materialize --sample-range

ui: install
	$(BIN)/expplatform instance
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

# The dbt docs alone: built from the warehouse into $(EXPPLATFORM_PAGES_DIR)/dbt-docs/, then
# served (with any health pages) on http://$(HOST):$(EXPPLATFORM_PAGES_PORT)/dbt-docs/ until Ctrl-C.
docs: install
	$(BIN)/python -m expplatform.health dbt-docs
	$(BIN)/python -m expplatform.health serve --host $(HOST)

# The page server runs in the background while the Dagster UI holds the foreground; it stops
# with the UI (trap) or, if this shell is killed, by itself (--exit-with-parent).
run: install
	$(BIN)/expplatform instance
	$(BIN)/expplatform sample-data --days $(SAMPLE_DAYS) --users $(SAMPLE_USERS)
	$(BIN)/expplatform materialize --sample-range
	$(BIN)/python -m expplatform.health dbt-docs
	@$(BIN)/python -m expplatform.health serve --host $(HOST) --exit-with-parent & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	echo "Dagster UI: http://$(HOST):$(PORT)"; \
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
