# Developer entry points; the logic lives in scripts/ so that it can be run without make.
.PHONY: install lock run test lint format bench

install:
	bash scripts/setup

# Refresh the lock files (requirements/) from pyproject.toml after changing a dependency.
lock:
	bash scripts/lock

run:
	bash scripts/run

test:
	bash scripts/test $(PYTEST_ARGS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: install
	.venv/bin/python -m bench $(BENCH_ARGS)
