# ml-compose: the template's own tasks. See README.md.
.DEFAULT_GOAL := help
UV ?= uv
PYTEST_WORKERS ?= 2
BAKE_DIR ?= .baked
# Answers for `make bake`, e.g. make bake ARGS="model_framework=xgboost compute=cuda"
ARGS ?=

.PHONY: help install test test-fast lint bake demo clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install:  ## the template's dev environment (.venv)
	$(UV) sync --quiet

test: install  ## every tier: bake matrix, hooks, bad answers, slow, containers, upkeep
	$(UV) run pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast: install  ## bake matrix, hooks and bad answers only
	$(UV) run pytest -n $(PYTEST_WORKERS) -m "not slow and not containers and not upkeep" $(PYTEST_ARGS)

lint: install  ## lint the template's own Python (hooks, tests)
	$(UV) run ruff check hooks tests scripts
	$(UV) run ruff format --check hooks tests scripts

bake: install  ## generate a project into .baked/ (ARGS="key=value ...")
	rm -rf $(BAKE_DIR) && mkdir -p $(BAKE_DIR)
	$(UV) run cookiecutter . --no-input --output-dir $(BAKE_DIR) $(ARGS)

demo: install  ## bake the default project, train, serve and predict on the host
	$(UV) run python scripts/demo.py

clean:  ## remove baked projects and caches
	rm -rf $(BAKE_DIR) .pytest_cache .ruff_cache
