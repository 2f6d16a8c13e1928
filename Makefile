# cryptolake: `make help` lists the targets. Everything installs under .venv/ and .cryptolake/ (git-ignored).
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION := 0.13.8
UV := .cryptolake/tools/uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help setup demo notebook test test-fast bench lint format clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m venv .cryptolake/tools/uv
	.cryptolake/tools/uv/bin/pip install --quiet uv==$(UV_VERSION)

$(BIN)/cryptolake: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

setup: $(BIN)/cryptolake ## Create .venv and install Kafka, MinIO and the Spark jars (a no-op once done)
	$(BIN)/cryptolake setup

demo: setup ## Run the whole pipeline locally on the synthetic venue until Ctrl-C
	$(BIN)/cryptolake up --source synthetic

notebook: setup ## Open notebooks/lake.ipynb in JupyterLab, on the lake the CRYPTOLAKE_* settings name (make demo's by default)
	$(BIN)/jupyter lab notebooks/lake.ipynb

test: setup lint ## Run every test: unit, Spark transforms, Kubernetes renders, end to end on local services
	$(BIN)/python -m pytest

test-fast: $(BIN)/cryptolake ## Run the unit and Spark transform tests only (no services; about two minutes idle)
	$(BIN)/python -m pytest -m "unit or transform"

bench: setup ## Measure the pipeline (throughput, freshness, memory; 12 to 23 min) into bench/results/
	$(BIN)/python -m bench

lint: $(BIN)/cryptolake ## ruff, mypy and the floors' import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(BIN)/cryptolake ## Rewrite the code in ruff's format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Delete local data, logs and checkpoints (keeps installed tools); stop the stack first
	rm -rf .cryptolake/local
