# Loupe: `make run` builds the environment and runs the demo; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: env run serve test lint typecheck bench clean

env:
	@$(PYTHON) scripts/venv.py

run: env
	LOUPE_MODEL=loupe-tiny $(BIN)/loupe demo

serve: env
	$(BIN)/loupe serve

lint: env
	$(BIN)/ruff check service connectors tests benchmarks scripts
	$(BIN)/ruff format --check service connectors tests benchmarks scripts

typecheck: env
	$(BIN)/mypy service connectors

test: env
	@bash scripts/system-deps.sh
	$(BIN)/ruff check service connectors tests benchmarks scripts
	$(BIN)/mypy service connectors
	$(BIN)/pytest

bench: env
	@bash scripts/system-deps.sh bench
	$(BIN)/python -m benchmarks.run $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
