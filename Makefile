# ChampiPy — the commands a newcomer needs: `make run`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASETS ?= $(abspath ../shared/datasets/champipy)

# The photo folders (species sub-folders) used to train the first model, by tests and benches.
export CHAMPIPY_DATASET_DIR ?= $(DATASETS)/train
export CHAMPIPY_EVAL_DIR ?= $(DATASETS)/eval

.PHONY: install run test test-fast bench mongo-venv clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "ChampiPy needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $@

install: $(BIN)/.installed

## Start the service on the embedded defaults (SQLite, local MLflow store, in-process jobs).
## The first start trains and promotes a model from CHAMPIPY_DATASET_DIR when none serves.
run: install
	$(BIN)/champipy serve

mongo-venv:
	bash scripts/setup_mongo_venv.sh

## The whole suite: real SQLite, PostgreSQL, Redis, MongoDB wire server, HTTP, Chromium.
test: install mongo-venv
	$(BIN)/pytest

## Everything but the slow training and browser tests.
test-fast: install mongo-venv
	$(BIN)/pytest -m "not slow and not browser"

bench: install
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_training.py

clean:
	rm -rf $(VENV) .venv-mongo build *.egg-info
